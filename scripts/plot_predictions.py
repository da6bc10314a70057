"""Prediction-vs-truth PNGs from runs saved with trainer.save_predictions=true.

    python scripts/plot_predictions.py runs/records/cmapss/clean/nac/seed0-*.predictions.npz --out results/plots \
        --name cmapss_nac                      # one panel per subset (the full experiment tags runs FD00x)
    python scripts/plot_predictions.py runs/records/bearings/clean/nac --order rows --out results/plots

One PNG per test set (<name>_<set>.png), one panel per file; see nac/harness/prediction_plots.py.
"""

from nac.harness.prediction_plots import main

if __name__ == "__main__":
    raise SystemExit(main())
