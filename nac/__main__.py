from nac.cli import main

main()
