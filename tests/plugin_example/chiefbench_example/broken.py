"""A plug-in module that cannot be imported: it needs a package that is not installed (for the error tests)."""

import chiefbench_example_missing_dependency  # noqa: F401

from framework.queues.base import QueueDesign


class BrokenDesign(QueueDesign):
    name = "broken"
