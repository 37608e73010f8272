"""Build the controller that `--algorithm` names."""

from __future__ import annotations

from proxy.core.aimd import AIMDController
from proxy.core.controller import Controller
from proxy.core.fixed import FixedController
from proxy.core.gradient import GradientController
from proxy.settings import Algorithm, Settings


def build_controller(settings: Settings) -> Controller:
    match settings.algorithm:
        case Algorithm.AIMD:
            return AIMDController.from_settings(settings)
        case Algorithm.GRADIENT:
            return GradientController.from_settings(settings)
        case Algorithm.FIXED:
            return FixedController.from_settings(settings)
