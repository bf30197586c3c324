"""The learned model: skops round trip, refusal of tampered files, pixel mask, training, CLI."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from swc_rs import codes
from swc_rs.change import cloud_shadow_mask, fit_normalisation, pixel_evidence
from swc_rs.classify import FEATURES
from swc_rs.config import DetectConfig
from swc_rs.errors import ModelError
from swc_rs.features import FEATURE_NAMES, band_family
from swc_rs.model import load_bundle, load_model, save_model
from swc_rs.training import TrainOptions, scene_source, train
from tests.conftest import FOREST, SOIL, forest

ROLES = ("blue", "green", "red", "nir")
FAST = TrainOptions(max_iter=30, negatives_per_source=15_000, positives_per_source=10_000)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two small generated scenes (test seeds): one to train on, one to test on."""
    from swc_rs.sample import generate_scene

    root = tmp_path_factory.mktemp("scenes")
    return {seed: generate_scene(root / f"scene_{seed}", seed=seed, size=512).before.parent for seed in (11, 12)}


@pytest.fixture(scope="module")
def trained(scenes, tmp_path_factory):
    """A model trained on scene 11 (no cross-validation: threshold 0.5), saved and reloaded."""
    bundle, card = train([scene_source(scenes[11])], FAST, progress=lambda m: None, cross_validate=False)
    path = save_model(bundle, card, tmp_path_factory.mktemp("model") / "model.skops")
    return path, bundle


def _random_bundle(seed: int = 0) -> dict:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, len(FEATURE_NAMES))).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=600) > 0).astype(int)
    pixel = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    xp = rng.normal(size=(300, len(FEATURES)))
    yp = np.array([codes.OTHER, codes.SPOIL, "非生产建设项目|耕地翻耕"], dtype=object)[np.argmax(xp[:, :3], axis=1)]
    patch = CalibratedClassifierCV(HistGradientBoostingClassifier(max_iter=5, random_state=0), cv=3).fit(xp, yp)
    return {"model_id": "test-model", "pixel": {"vnir": {"classifier": pixel, "threshold": 0.5, "gate_z": 0.5,
                                                          "features": list(FEATURE_NAMES)}},
            "patch": {"classifier": patch, "classes": [str(c) for c in patch.classes_], "features": list(FEATURES)}}


def _feats(n: int = 20, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))


# -- save / load -------------------------------------------------------------------------------
def test_round_trip_same_predictions(tmp_path):
    bundle = _random_bundle()
    path = save_model(bundle, {"purpose": "test"}, tmp_path / "m.skops")
    model = load_model(path)
    assert model.model_id == "test-model"
    assert model.card["sha256"] and model.card["model_id"] == "test-model"
    feats = _feats()
    q1, c1, r1 = model.predict_patches(feats)
    q0 = bundle["patch"]["classifier"].predict_proba(feats.to_numpy())
    q2, c2, r2 = load_model(path).predict_patches(feats)
    assert list(q1) == list(q2) and np.allclose(c1, c2) and list(r1) == list(r2)
    assert set(q1) <= set(codes.QTYPES)
    assert ((c1 >= 0) & (c1 <= 1)).all()
    assert all((r == "") == (q != codes.NOT_PROJECT) for q, r in zip(q1, r1, strict=False))
    x = np.random.default_rng(3).normal(size=(50, len(FEATURE_NAMES))).astype(np.float32)
    assert np.allclose(model.bundle["pixel"]["vnir"]["classifier"].predict_proba(x),
                       bundle["pixel"]["vnir"]["classifier"].predict_proba(x))
    assert q0.shape[0] == len(feats)


def test_the_model_id_names_the_detector_settings_as_well_as_the_data(scenes, trained):
    """Patches cut with other detection settings make another model, so another id; the
    training data's digest is the same."""
    import dataclasses

    _, card = load_bundle(trained[0])
    config = DetectConfig()
    other = dataclasses.replace(config, change=dataclasses.replace(config.change, hysteresis=0.0))
    _, other_card = train([scene_source(scenes[11])], dataclasses.replace(FAST, pixel_models=False, config=other),
                          progress=lambda m: None, cross_validate=False)
    assert other_card["training_data_sha256"] == card["training_data_sha256"]
    assert other_card["detector_config_sha256"] != card["detector_config_sha256"]
    assert other_card["model_id"] != card["model_id"]


def test_empty_patch_table(tmp_path):
    model = load_model(save_model(_random_bundle(), {}, tmp_path / "m.skops"))
    qtype, conf, reason = model.predict_patches(pd.DataFrame(columns=list(FEATURES)))
    assert len(qtype) == len(conf) == len(reason) == 0


def test_changed_bytes_are_refused(tmp_path):
    path = save_model(_random_bundle(), {}, tmp_path / "m.skops")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.skops"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        load_model(bad)
    assert err.value.exit_code == 2 and "bad.skops" in err.value.message


def test_a_loaded_model_is_reused_until_its_file_changes(tmp_path):
    """A batch worker loads the model once; a file changed in place is verified again."""
    path = save_model(_random_bundle(0), {}, tmp_path / "m.skops")
    first = load_model(path)
    assert load_model(path) is first
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, same path
    with pytest.raises(ModelError):
        load_model(path)


def test_tampered_payload_is_refused(tmp_path):
    """A payload swapped inside a valid archive no longer matches the recorded SHA-256."""
    import skops.io as sio

    path = save_model(_random_bundle(0), {}, tmp_path / "m.skops")
    outer = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    outer["payload"] = sio.dumps(_random_bundle(1))
    sio.dump(outer, tmp_path / "swapped.skops")
    with pytest.raises(ModelError, match="SHA-256"):
        load_model(tmp_path / "swapped.skops")


@pytest.mark.parametrize("where", ["outer", "payload"])
def test_untrusted_type_is_refused(tmp_path, where):
    import hashlib

    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    bundle = _random_bundle()
    if where == "payload":
        bundle["extra"] = LogisticRegression()
    payload = sio.dumps(bundle)
    outer = {"format": "swc-rs-model", "format_version": 1, "payload": payload,
             "sha256": hashlib.sha256(payload).hexdigest(), "card": {}}
    if where == "outer":
        outer["extra"] = LogisticRegression()
    sio.dump(outer, tmp_path / "evil.skops")
    with pytest.raises(ModelError, match="LogisticRegression"):
        load_model(tmp_path / "evil.skops")


def test_loading_the_shipped_model_skips_skops_import_of_every_estimator():
    """Start-up cost: skops builds its default trust list by importing every scikit-learn
    estimator module (~0.45 s per detect and per batch worker); swc-rs passes its own list."""
    import subprocess
    import sys

    from swc_rs.model import default_model_path

    assert default_model_path() is not None  # the repository ships one (make model)
    probe = ("import sys\n"
             "from swc_rs.model import default_model_path, load_model\n"
             "model = load_model(default_model_path())\n"
             "assert model.applies_to() in (True, False)\n"
             "print(' '.join(m for m in ('sklearn.neural_network', 'sklearn.gaussian_process',\n"
             "      'sklearn.cross_decomposition', 'sklearn.semi_supervised') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_not_a_model_is_refused(tmp_path):
    (tmp_path / "x.skops").write_text("not a zip")
    with pytest.raises(ModelError):
        load_model(tmp_path / "x.skops")
    with zipfile.ZipFile(tmp_path / "z.skops", "w") as zf:
        zf.writestr("schema.json", "{}")
    with pytest.raises(ModelError):
        load_model(tmp_path / "z.skops")
    with pytest.raises(ModelError):
        load_model(tmp_path / "missing.skops")


def test_pixel_families_hint_reads_the_file_without_loading_it(tmp_path):
    from swc_rs.model import pixel_families_hint

    with_pixels = save_model(_random_bundle(), {}, tmp_path / "pixels.skops")
    typer_only = _random_bundle()
    typer_only["pixel"] = {}
    without = save_model(typer_only, {}, tmp_path / "typer.skops")
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"not a model")
    assert pixel_families_hint(with_pixels) == load_model(with_pixels).families() == ["vnir"]
    assert pixel_families_hint(without) == load_model(without).families() == []
    assert pixel_families_hint(garbage) is None and pixel_families_hint(tmp_path / "missing.skops") is None
    # kept by path, size and time: asked again it answers at once, and a replaced file is read again
    assert pixel_families_hint(with_pixels) == ["vnir"]
    with_pixels.write_bytes(without.read_bytes())
    assert pixel_families_hint(with_pixels) == []


@pytest.mark.slow
def test_a_misleading_hint_costs_time_not_the_result(trained, scenes, monkeypatch, caplog):
    """detect starts its windows without the model when the hint says it has no pixel
    models; if the loaded model has some after all, the windows are done again with them."""
    import swc_rs.model
    from swc_rs.pipeline import DetectRequest, detect

    folder = scenes[12]
    request = DetectRequest(before=folder / "before.tif", after=folder / "after.tif", zones=folder / "zones.gpkg",
                            projects=folder / "projects.gpkg", model=trained[0])
    honest = detect(request)
    monkeypatch.setattr(swc_rs.model, "pixel_families_hint", lambda path: [])
    with caplog.at_level("WARNING", logger="swc_rs"):
        misled = detect(request)
    assert "finding the patches again" in caplog.text
    assert len(honest.patches) > 0
    assert honest.patches.drop(columns="geometry").equals(misled.patches.drop(columns="geometry"))
    assert honest.patches.geometry.geom_equals_exact(misled.patches.geometry, 1e-9).all()


# -- pixel mask ----------------------------------------------------------------------------------
def test_band_family():
    assert band_family(("blue", "green", "red")) == "rgb"
    assert band_family(ROLES) == "vnir"
    assert band_family(ROLES + ("swir1", "swir2")) == "vnir+swir"


def _mask(model, before, after):
    """pixel_mask as the pipeline calls it: after normalised, evidence and exclusion computed."""
    config = DetectConfig()
    valid = np.ones(before.shape[1:], bool)
    norm = fit_normalisation(before.reshape(4, -1), after.reshape(4, -1), pif_fraction=config.change.pif_fraction)
    after = norm.apply(after)
    ev = pixel_evidence(before, after, ROLES)
    excluded = cloud_shadow_mask(before, after, ROLES, ev, config.change)
    return model.pixel_mask(before, after, valid, excluded, ROLES, ev, config)


def test_pixel_mask_finds_bare_soil_and_ignores_gain(trained):
    model = load_model(trained[0])
    before = forest(128, 128, 1) / 10_000
    after = forest(128, 128, 2) / 10_000
    after[:, 40:70, 50:80] = SOIL[:, None, None] / 10_000 * (1 + 0.03 * np.random.default_rng(4).standard_normal((1, 30, 30)))
    mask = _mask(model, before.astype(np.float32), after.astype(np.float32))
    assert mask is not None and mask.dtype == bool
    square = np.zeros_like(mask)
    square[40:70, 50:80] = True
    assert mask[square].mean() > 0.9
    assert mask[~square].mean() < 0.01
    gained = (forest(128, 128, 2) * 1.25 + 80) / 10_000
    assert _mask(model, before.astype(np.float32), gained.astype(np.float32)).mean() < 0.01


def test_pixel_mask_without_a_family_model_falls_back(trained):
    model = load_model(trained[0])
    model.bundle["pixel"].pop("rgb", None)
    rgb = ("blue", "green", "red")
    before = (forest(32, 32, 1)[:3] / 10_000).astype(np.float32)
    after = (forest(32, 32, 2)[:3] / 10_000).astype(np.float32)
    ev = pixel_evidence(before, after, rgb)
    valid = np.ones((32, 32), bool)
    assert model.pixel_mask(before, after, valid, ~valid, rgb, ev, DetectConfig()) is None
    assert FOREST.shape == (4,)


# -- generalisation --------------------------------------------------------------------------------
@pytest.mark.slow
def test_model_trained_on_one_seed_works_on_another(trained, scenes, tmp_path):
    from swc_rs.evaluate import evaluate
    from swc_rs.pipeline import DetectRequest, detect

    folder = scenes[12]
    result = detect(DetectRequest(before=folder / "before.tif", after=folder / "after.tif", zones=folder / "zones.gpkg",
                                  projects=folder / "projects.gpkg", model=trained[0]))
    assert result.run_info["model_id"] == trained[1]["model_id"]
    truth = gpd.read_file(folder / "truth.gpkg", layer="truth_patches")
    confounders = gpd.read_file(folder / "truth.gpkg", layer="confounders")
    scores = evaluate(result.patches, truth, confounders)
    assert scores.recall >= 0.9, scores
    assert scores.precision >= 0.85, scores


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_train_writes_model_and_card_and_refuses_overwrite(scenes, tmp_path):
    from swc_rs.cli.train import train as train_command

    out = tmp_path / "models" / "m.skops"
    args = [str(scenes[11]), "-o", str(out), "--no-cv", "--no-patch-model", "-q"]
    runner = CliRunner()
    done = runner.invoke(train_command, args)
    assert done.exit_code == 0, done.output
    assert out.exists() and out.with_suffix(".md").exists()
    assert out.stat().st_size < 20e6
    card = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "Model card" in card and "scene_11" in card
    bundle, meta = load_bundle(out)
    assert "vnir" in bundle["pixel"] and meta["sha256"]
    again = runner.invoke(train_command, args)
    assert again.exit_code == 2
    assert "already exists" in again.output
    assert runner.invoke(train_command, args + ["--overwrite"]).exit_code == 0


def test_cli_train_rejects_bad_labels(tmp_path):
    from swc_rs.cli.train import train as train_command

    (tmp_path / "empty").mkdir()
    done = CliRunner().invoke(train_command, [str(tmp_path / "empty"), "-o", str(tmp_path / "m.skops")])
    assert done.exit_code == 2
    assert Path(tmp_path / "m.skops").exists() is False


def test_a_hazy_copy_teaches_haze_as_a_false_alarm_and_keeps_the_truth(scenes, tmp_path):
    import rasterio
    import shapely

    from swc_rs.augment import hazy_copy
    from swc_rs.training import label_patches

    scene = scenes[12]
    copy = hazy_copy(scene, tmp_path / "hazy", seed=3)
    hazy_name = ("before" if '"date": "before"' in (copy / "haze.json").read_text() else "after") + ".tif"
    clear_name = "after.tif" if hazy_name == "before.tif" else "before.tif"
    with rasterio.open(scene / clear_name) as a, rasterio.open(copy / clear_name) as b:
        assert (a.read() == b.read()).all()  # the other date is untouched
    with rasterio.open(scene / hazy_name) as a, rasterio.open(copy / hazy_name) as b:
        original, hazy = a.read().astype(float), b.read().astype(float)
        assert b.descriptions == a.descriptions and b.tags() == a.tags()
    lift = (hazy - original).reshape(4, -1)
    thick = lift[0] > np.quantile(lift[0], 0.9)
    assert lift[0, thick].mean() > lift[3, thick].mean()  # path radiance: blue far more than NIR
    assert (lift[:, lift[0] == 0] == 0).all()  # outside the haze the imagery is unchanged

    truth = gpd.read_file(copy / "truth.gpkg", layer="truth_patches")
    confounders = gpd.read_file(copy / "truth.gpkg", layer="confounders")
    original_truth = gpd.read_file(scene / "truth.gpkg", layer="truth_patches")
    assert len(truth) == len(original_truth) and (confounders.KIND == "haze").sum() == 1
    # A patch in the haze that is no disturbance is a 云及阴影 false alarm; a true site under it keeps its type.
    haze = confounders[confounders.KIND == "haze"].to_crs(32648).geometry.iloc[0]
    busy = shapely.union_all(list(confounders[confounders.KIND != "haze"].to_crs(32648).geometry) + list(truth.to_crs(32648).geometry))
    free = haze.buffer(-30).difference(busy.buffer(30))
    assert not free.is_empty
    spot = free.representative_point()
    patches = gpd.GeoDataFrame(geometry=[spot.buffer(10), *truth.to_crs(32648).geometry], crs=32648)
    labels = label_patches(scene_source(copy), patches)
    assert labels[0] == "非生产建设项目|云及阴影"
    assert list(labels[1:]) == list(truth.QTYPE.astype(str))


@pytest.mark.parametrize("pixel_m", [1.0, 4.0])
def test_a_resampled_copy_is_the_same_scene_on_another_grid(scenes, tmp_path, pixel_m):
    import rasterio

    from swc_rs.augment import resampled_copy

    scene = scenes[12]
    copy = resampled_copy(scene, tmp_path / "copy", pixel_m=pixel_m)
    for name in ("before.tif", "after.tif"):
        with rasterio.open(scene / name) as a, rasterio.open(copy / name) as b:
            assert b.res == (pixel_m, pixel_m) and b.crs == a.crs
            assert b.bounds == pytest.approx(a.bounds, abs=1e-6)  # the same ground
            assert b.descriptions == a.descriptions and b.tags() == a.tags()
            np.testing.assert_allclose(b.read().mean(axis=(1, 2)), a.read().mean(axis=(1, 2)), rtol=0.01)
    assert (copy / "truth.gpkg").read_bytes() == (scene / "truth.gpkg").read_bytes()
