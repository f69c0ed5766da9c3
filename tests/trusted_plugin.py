"""A user's own code for tests/test_trust.py, named as `tests.trusted_plugin.PluginLoss`."""
import os  # re-exported on purpose: `tests.trusted_plugin.os.system` must stay refused under --trust tests
from pathlib import Path  # likewise `tests.trusted_plugin.Path.touch`

from gan_cli.losses.adversarial import NonSaturating

MARKER = "TRUSTED_PLUGIN_MARKER"


class PluginLoss(NonSaturating):
    """The non-saturating loss; writes the file $TRUSTED_PLUGIN_MARKER names when built, to show it ran."""

    def __init__(self, **loss_options):
        super().__init__(**loss_options)
        if os.environ.get(MARKER):
            Path(os.environ[MARKER]).write_text("built\n")
