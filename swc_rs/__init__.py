"""swc-rs: remote-sensing supervision for soil and water conservation (水土保持遥感监管).

Two dates of imagery, the city's SWC zones and the approved responsibility ranges go
in; disturbance patches (扰动图斑) with compliance verdicts (BYD), risk colours and a
QGIS-ready GeoPackage come out.
"""

__version__ = "0.1.0"
