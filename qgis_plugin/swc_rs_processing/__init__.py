"""swc-rs Processing provider for QGIS 3.22 and later 3.x: the swc-rs commands in the
Processing toolbox (detect, batch, report, export, verify import, erosion)."""


def classFactory(iface):
    from .plugin import SwcRsPlugin

    return SwcRsPlugin(iface)
