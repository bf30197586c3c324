# swc-rs — the README's commands. Everything installs into .venv from pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAMPLE := data/sample_tiles
SIZE ?= 8192
JOBS ?= 2

.PHONY: venv demo demo-erosion bench-erosion qgis-plugin test docs-img fuzz test-pg lint bench bench-batch profile eval-real eval-dev eval-generated model lodo model-pixel check-rules clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,train,postgres]"
	touch $(STAMP)

venv: $(STAMP)

## make demo: detect on the bundled sample scene, write out/demo.gpkg and score it against its truth
demo: $(STAMP)
	mkdir -p out
	$(BIN)/swc-rs detect $(SAMPLE)/before.tif $(SAMPLE)/after.tif \
		--zones $(SAMPLE)/zones.gpkg --projects $(SAMPLE)/projects.gpkg \
		--sensitive $(SAMPLE)/sensitive.gpkg -o out/demo.gpkg --overwrite
	$(BIN)/swc-rs evaluate out/demo.gpkg $(SAMPLE)/truth.gpkg

## make qgis-plugin: build dist/swc_rs_processing.zip, the QGIS Processing plugin (Plugins → Install from ZIP);
## its headless QGIS test: .venv/bin/python -m pytest tests/test_qgis_plugin.py (SWC_RS_SHOTS=docs/zh/img: the dialog's PNG)
qgis-plugin:
	$(PY) qgis_plugin/build.py

## make demo-erosion: swc-rs erosion (CSLE, 水土保持率) on the sample scene's DEM, land use and October image;
## prints the per-county table and writes out/demo_erosion.gpkg with its COGs
demo-erosion: $(STAMP)
	mkdir -p out
	$(BIN)/swc-rs erosion $(SAMPLE)/dem.tif --imagery $(SAMPLE)/before.tif --landuse $(SAMPLE)/landuse.gpkg \
		--zones $(SAMPLE)/zones.gpkg --counties $(SAMPLE)/counties.gpkg \
		--config pipelines/erosion_sample.toml --year 2026 -o out/demo_erosion.gpkg --overwrite

## make test: the whole suite (unit, property, CLI, end-to-end on generated scenes)
test: $(STAMP) check-rules
	$(BIN)/python -m pytest -q -n $(JOBS) -p no:cacheprovider

## make docs-img: re-render the guides' screenshots (docs/zh/img: the QGIS map and the report of the sample scene)
## with the real clients (PyQGIS, Chromium; the tests say which is missing)
docs-img: $(STAMP)
	SWC_RS_DOCS_IMG=docs/zh/img $(BIN)/python -m pytest -q -p no:cacheprovider -rs tests/test_docs_images.py

## make fuzz: the long hypothesis profile of the raster and vector reader fuzzing (2000 damaged files each)
fuzz: $(STAMP)
	SWC_FUZZ=long $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz_readers.py

## make test-pg: the PostgreSQL/PostGIS store's tests alone; they start a throwaway server (Debian postgresql + postgresql-postgis,
## a Unix socket in a temporary folder) and tear it down; without the packages they skip and say why
test-pg: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -rs tests/test_store_postgres.py

lint: $(STAMP)
	$(BIN)/ruff check swc_rs tests benchmarks

## make bench [SIZE=16384]: I/O floor vs GDAL CLI chain vs swc-rs detect on a generated scene
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_detect.py --size $(SIZE)

## make bench-erosion [EROSION_SIZE=12288]: swc-rs erosion on a generated city-sized 10 m DEM (12288² ≈ 151 Mpx)
## with imagery and land use in .cache/bench_erosion; prints wall time, peak RSS and Mpx/s
EROSION_SIZE ?= 12288
bench-erosion: $(STAMP)
	$(BIN)/python benchmarks/bench_erosion.py --size $(EROSION_SIZE)

## make profile [PROFILE_SIZE=4096]: wall and CPU seconds by stage of detect on the bench scene and of one batch tile
PROFILE_SIZE ?= 4096
profile: $(STAMP)
	$(BIN)/python benchmarks/profile_detect.py --size $(PROFILE_SIZE)

## make bench-batch: the monthly batch on generated tiles with 1 and 2 workers
bench-batch: $(STAMP)
	$(BIN)/python benchmarks/bench_batch.py

## make eval-generated: accuracy on three generated seeds never used for tuning
eval-generated: $(STAMP)
	$(BIN)/python benchmarks/eval_generated.py --seeds 51 52 53

## make eval-real: detect vs classic baselines on ../shared/eval/real (test labels, never tuned on)
eval-real: $(STAMP)
	$(BIN)/python benchmarks/eval_real.py

## make eval-dev: the same harness on the development set built from ../shared/train/real (~2 min)
eval-dev: $(STAMP)
	$(BIN)/python benchmarks/make_dev_set.py ../shared/train/real .cache/dev
	mkdir -p out
	$(BIN)/python benchmarks/eval_real.py --data .cache/dev/all --json out/eval_dev.json

## make model: retrain the shipped models: the two change networks (PyTorch on CPU, exported to ONNX; ~25 + ~12 min
## on 2 idle cores) from ../shared/train, then the patch typer on patches they cut from 48 generated scenes (~7 min)
model: $(STAMP)
	$(BIN)/python -m swc_rs.change.train --family highres --out swc_rs/data/change_highres.onnx
	$(BIN)/python -m swc_rs.change.train --family multispectral --out swc_rs/data/change_multispectral.onnx
	$(BIN)/python benchmarks/change_card.py swc_rs/data/change_highres.json swc_rs/data/change_multispectral.json \
		--lodo .cache/cd/lodo_highres.json .cache/cd/lodo_ms.json -o models/CHANGE_MODEL_CARD.md
	mkdir -p .cache/train
	$(BIN)/python -m swc_rs.training --output swc_rs/data/qtype_model.skops --patch-only --no-cv --no-real --haze-every 3 \
		--work .cache/train --seeds $$(seq 1000 1047)
	mv swc_rs/data/qtype_model.md models/MODEL_CARD.md

## make lodo: leave-one-dataset-out for both change networks (one reduced-budget model per held-out dataset, ~1 h)
lodo: $(STAMP)
	mkdir -p .cache/cd
	$(BIN)/python -m swc_rs.change.train --family multispectral --lodo .cache/cd/lodo_ms.json
	$(BIN)/python -m swc_rs.change.train --family highres --lodo .cache/cd/lodo_highres.json

## make model-pixel: the experimental two-stage model with pixel models (real training cities too)
model-pixel: $(STAMP)
	$(BIN)/python -m swc_rs.training --output .cache/pixel_model.skops

check-rules:
	@cmp -s zones/rules.toml swc_rs/data/zone_rules.toml || \
		(echo "zones/rules.toml and swc_rs/data/zone_rules.toml differ: copy zones/rules.toml over the packaged one"; exit 1)

clean:
	rm -rf out .pytest_cache
