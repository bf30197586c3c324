"""Dynamic soil-erosion monitoring: the CSLE and the soil-and-water-conservation rate.

- :mod:`~swc_rs.erosion.config`  the ``[erosion]`` numbers, each with its source;
- :mod:`~swc_rs.erosion.terrain` slope, filled DEM, D8, slope length (pyflwdir);
- :mod:`~swc_rs.erosion.factors` L, S, cover, B, E, T and the SL 190-2007 grades;
- :mod:`~swc_rs.erosion.rate`    tallies per region and 水土保持率;
- :mod:`~swc_rs.erosion.run`     :func:`erosion` composes them window by window.
"""

from swc_rs.erosion.config import ErosionConfig, load_erosion_config
from swc_rs.erosion.run import ErosionRequest, ErosionResult, erosion

__all__ = ["ErosionConfig", "ErosionRequest", "ErosionResult", "erosion", "load_erosion_config"]
