"""validate: every parameter of params.yaml, before a stage that would lose its outputs runs.

DVC deletes a stage's outputs before it runs the stage. A bad ``-S`` value found only by the stage
that reads it (a strategy argument, in the backtest) would cost the user that stage's last good
results. This stage reads every section of params.yaml, so any change re-runs it, and the fetch
stage depends on its output, so it runs first: a bad value stops ``dvc repro`` or ``dvc exp run``
here, with every other output in place.
"""

from kalshi_lab import paths
from kalshi_lab.execution import build_strategy
from kalshi_lab.features.user import user_features
from kalshi_lab.io import StagedOutputs
from kalshi_lab.models import check_model_params
from kalshi_lab.params import Params, load_params
from kalshi_lab.stages.runner import logger, run_stage

#: the output's content never depends on the parameters, so that the stages after this one
#: re-run for their own parameters only
VALID = "params.yaml passed validation\n"


def check(params: Params) -> None:
    """The rules the sections cannot check alone (``load_params`` checked each section): the
    model's estimator takes ``model.params`` (names, types and values, as LightGBM or
    scikit-learn check them when they fit, see check_model_params); the strategy builds from
    its arguments and reads the model's target (the class checks its own arguments, see
    build_strategy); each user feature's function imports and takes its keys, its columns are
    not built-in ones."""
    check_model_params(params.model)
    build_strategy(params.strategy, params.model.target)
    user_features(params.features)


def main() -> None:
    params = load_params()
    check(params)
    with StagedOutputs() as out:
        out.write_text(paths.PARAMS_VALID, VALID)
    logger.info("params.yaml is valid: %s on %s data", params.strategy.name, params.data.source)


if __name__ == "__main__":
    run_stage("validate", main)
