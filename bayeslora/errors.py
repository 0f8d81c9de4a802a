"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""


class BayesLoraError(Exception):
    """Base class for bad input (config, data, model, tokenizer) and run failures."""


class ConfigError(BayesLoraError):
    pass


class DataError(BayesLoraError):
    pass


class ModelLoadError(BayesLoraError):
    pass


class TokenizerError(BayesLoraError):
    pass


class TrainingDivergedError(BayesLoraError):
    pass


class RecordClashError(BayesLoraError):
    pass


# the results side (bayeslora.results): records -> tables, figures, reports
class AggregationError(BayesLoraError):
    pass


class FigureError(BayesLoraError):
    pass


class HistoryError(BayesLoraError):
    pass


class EnsembleError(BayesLoraError):
    pass
