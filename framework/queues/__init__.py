"""Queue designs behind one interface; see ``framework.queues.base``."""

from framework.queues.base import (
    REGISTRY,
    ConsumerEnd,
    DesignUnavailableError,
    Empty,
    Full,
    ProducerEnd,
    QueueDesign,
    QueueSettings,
    UnknownDesignError,
    availability,
    design_class,
    designs,
)

__all__ = [
    "REGISTRY",
    "ConsumerEnd",
    "DesignUnavailableError",
    "Empty",
    "Full",
    "ProducerEnd",
    "QueueDesign",
    "QueueSettings",
    "UnknownDesignError",
    "availability",
    "design_class",
    "designs",
]
