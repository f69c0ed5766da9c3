"""User-facing errors: raised for bad input, printed as one paragraph without a traceback."""


class GanCliError(Exception):
    """A problem the user can fix (bad config value, missing data, bad checkpoint).

    The message must name the bad key, file or value and say what would be valid.
    """


class ConfigError(GanCliError):
    """A config value is invalid (wrong range, unsupported combination)."""


class DataError(GanCliError):
    """A dataset cannot be built (no files at root, unreadable images)."""


class CheckpointError(GanCliError):
    """A checkpoint is missing, corrupt or does not match the run."""


class TrainingDiverged(GanCliError):
    """A loss became NaN or Inf; the last good checkpoint is kept."""


class UntrustedTarget(ConfigError):
    """A config or checkpoint names a `_target_` that is not allowed (see gan_cli.trust)."""


class DownloadError(GanCliError):
    """A download the user asked for failed (network, HTTP status, checksum); nothing partial is left."""
