"""The swc-rs Processing provider (id ``swcrs``) and its one setting: the swc-rs executable."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS

PROVIDER_NAME = "swc-rs 水土保持遥感监管"
#: Processing → Options → Providers → swc-rs: the swc-rs to run (empty: swc-rs on PATH).
EXECUTABLE = "SWCRS_EXECUTABLE"
ICON = Path(__file__).with_name("icon.svg")


def executable_setting() -> str:
    """The configured swc-rs executable, or "" (then swc-rs is looked up on PATH)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:  # Processing plugin not loaded
        return ""
    return str(ProcessingConfig.getSetting(EXECUTABLE) or "").strip()


class SwcRsProvider(QgsProcessingProvider):
    def id(self):
        return "swcrs"

    def name(self):
        return PROVIDER_NAME

    def longName(self):
        return "swc-rs — 水土保持遥感监管 soil and water conservation remote-sensing supervision"

    def icon(self):
        return QIcon(str(ICON))

    def svgIconPath(self):
        return str(ICON)

    def load(self):
        from processing.core.ProcessingConfig import ProcessingConfig, Setting

        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(Setting(
            self.name(), EXECUTABLE,
            "swc-rs 可执行文件（留空则在 PATH 中查找）swc-rs executable (empty: found on PATH)", "",
            valuetype=Setting.FILE))
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        from processing.core.ProcessingConfig import ProcessingConfig

        if EXECUTABLE in ProcessingConfig.settings:
            ProcessingConfig.removeSetting(EXECUTABLE)

    def loadAlgorithms(self):
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
