"""The QGIS plugin: registers the swc-rs Processing provider."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import SwcRsProvider


class SwcRsPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        if self.provider is None:
            self.provider = SwcRsProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
