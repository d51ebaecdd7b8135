"""The exceptions Quanzhan raises, all under one root.

    QuanzhanError
    ├── ConfigError        a configuration value or file is invalid
    │   └── ScenarioError  a scenario name is unknown or a scenario file is malformed
    ├── ModelError         a model directory is missing, corrupt or incompatible
    ├── OutputError        an output location cannot be written
    └── HindsightSolverError  the LP solver failed (``bidding.hindsight``, also a RuntimeError)

Library errors are translated at the boundary with ``raise ... from``; the CLI turns any
``QuanzhanError`` into a one-line message and a non-zero exit.
"""


class QuanzhanError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigError(QuanzhanError):
    """A configuration value or file is invalid."""


class ScenarioError(ConfigError):
    """A scenario name is unknown or a scenario file is malformed."""


class ModelError(QuanzhanError):
    """A model directory is missing, corrupt or incompatible."""


class OutputError(QuanzhanError):
    """An output location cannot be written."""
