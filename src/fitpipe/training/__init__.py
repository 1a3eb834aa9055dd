"""Training: the Keras training API (compile/fit/evaluate/predict/*_on_batch) on pipelines."""

from fitpipe.training.evaluate_predict import predict_checked_output
from fitpipe.training.models import FitpipeMethods, Model, Sequential
from fitpipe.training.outputs import check_not_input
from fitpipe.training.preflight import CheckReport, check_data
from fitpipe.training.trainer import Trainer

__all__ = [
    "CheckReport",
    "FitpipeMethods",
    "Model",
    "Sequential",
    "Trainer",
    "check_data",
    "check_not_input",
    "predict_checked_output",
]
