# segline — generic rules shared by every dataset makefile (spleen.make, isles.make,
# vessels.make). A dataset makefile sets what differs (archives, lineage, adapter,
# methods as target-specific variables, defaults) and then includes this file.
#
# The graph (design.md §1):
#   lineage + archive(s) -> data/$(DS)/raw -> data/$(DS)/cases -> data/$(DS)/dist
#   -> results/$(DS)/<method>/ -> results/$(DS)/*.png, report.md -> archives/
#
# Rules of the house: every target is written to a temporary path and renamed when
# complete (the CLIs do it through segline.atomic); .DELETE_ON_ERROR; nothing with
# side effects at parse time, so `make -n` plans exactly the real work.
#
# Variables a dataset makefile must set before including this file:
#   DS_NAME         short name (spleen, isles, vessels)
#   REAL_ARCHIVES   the downloaded archive(s), REAL_LINEAGE their md5 file
#   TOY_ARCHIVES    the generated toy archive(s), TOY_LINEAGE, TOY_GENERATOR
#   ADAPTER         the slicing adapter (msd, isles)
#   ALL_METHODS     every method it declares (results/$(DS)/<method> targets)
# and may set (hooks for extra stages):
#   DATA_EXTRA      more data stages `data` builds (e.g. vessels' MIP, pseudo-labels)
#   TRAIN_DEPS      more prerequisites of every training (e.g. those stages)
#   EXTRA_CURVES    more per-epoch curves (e.g. val_cldice)
#   EXTRA_RESULTS   more files under results/$(DS) to build and pack
#   REPORT_ARGS     extra report options (e.g. --metrics ... --reference full)

SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDEXPANSION:
.DEFAULT_GOAL := all
MAKEFLAGS += --no-builtin-rules

# ---------------------------------------------------------------------------
# Knobs (command line: make -f spleen.make NET=Dimwit EPC=5 DEBUG=--debug)
# ---------------------------------------------------------------------------
VENV ?= .venv
# CC: the python command. Make predefines CC as the C compiler, so only take it
# when the user set it (e.g. CC='srun --gres=gpu:1 python').
ifeq ($(origin CC),default)
CC := $(VENV)/bin/python
USE_VENV := 1
endif
CFLAGS ?=
TOY ?=
SEED ?= 0
DEVICE ?= auto
DEBUG ?=
PACK_MODELS ?=
AMP ?= auto
CONTEXT ?=
WEIGHT_MAP ?=
# Crop each case before storing it: none, body (CT above -500 HU) or label, + margin mm.
CROP ?= none
CROP_MARGIN ?= 10

IS_TOY := $(filter 1 yes true,$(TOY))
ifneq ($(IS_TOY),)
DS ?= $(DS_NAME)-toy
ARCHIVES ?= $(TOY_ARCHIVES)
LINEAGE ?= $(TOY_LINEAGE)
else
DS ?= $(DS_NAME)
ARCHIVES ?= $(REAL_ARCHIVES)
LINEAGE ?= $(REAL_LINEAGE)
endif
DATA := data/$(DS)
RES := results/$(DS)
METHODS ?= $(ALL_METHODS)
METHOD_DIRS := $(addprefix $(RES)/,$(METHODS))
unknown_methods := $(filter-out $(ALL_METHODS) $(OPTIONAL_METHODS),$(METHODS))
ifneq ($(unknown_methods),)
$(error unknown METHODS: $(unknown_methods); known: $(ALL_METHODS) $(OPTIONAL_METHODS))
endif
PY := $(CC) $(CFLAGS)
# The python command reaches the provenance (a prefix such as srun is recorded there).
export SEGLINE_CC := $(CC)

# Source files each stage depends on: a change of code rebuilds what it produced.
pkg := src/segline
CORE_SRC := $(pkg)/__init__.py $(pkg)/atomic.py $(pkg)/casestore.py $(pkg)/cli.py $(pkg)/errors.py
LINEAGE_SRC := $(wildcard $(pkg)/lineage/*.py) preprocess/unpack.py
SLICE_SRC = $(CORE_SRC) $(wildcard $(pkg)/datasets/__init__.py $(pkg)/datasets/$(ADAPTER).py \
  $(pkg)/preprocess/*.py) preprocess/slice.py
DIST_SRC := $(CORE_SRC) $(pkg)/distmaps.py preprocess/distmaps.py
TRAIN_SRC := $(CORE_SRC) $(wildcard $(pkg)/data/*.py $(pkg)/losses/*.py $(pkg)/nets/*.py \
  $(pkg)/metrics/*.py $(pkg)/train/*.py $(pkg)/preprocess/geometry.py) $(pkg)/provenance.py
PLOT_SRC := $(CORE_SRC) $(wildcard $(pkg)/plots/*.py)
REPORT_SRC := $(CORE_SRC) $(pkg)/report.py
PACK_SRC := $(CORE_SRC) $(pkg)/pack.py

# $(call same,A,B): non-empty when A and B are equal strings (modulo outer spaces).
same = $(and $(findstring x$(strip $1)x,x$(strip $2)x),$(findstring x$(strip $2)x,x$(strip $1)x))
# $(call params_changed,DIR,PARAMS): FORCE when DIR/params.txt does not hold PARAMS,
# so changing a knob rebuilds the stage it affects (read-only at parse time).
params_changed = $(if $(call same,$(file <$1/params.txt),$2),,FORCE)
# $(call quote,TEXT): TEXT as one single-quoted shell word.
quote = '$(subst ','\'',$1)'
# Recipe line recording the parameters a stage was built with.
record_params = printf '%s\n' $(call quote,$2) > $1/params.txt
# Kervadec et al.'s rebalanced schedule, for loss specs: (1-a)*regional + a*term with
# a = 0.01*epoch, epochs counted from 1, capped at 0.99 (usage: boundary:0.01$(REBALANCE)).
REBALANCE := [schedule=rebalance;step=0.01;cap=0.99]

# When this make started (reading the clock has no side effect): a prerequisite
# stage older than this was up to date and not rebuilt; recipes say so in one line.
MAKE_START := $(shell date +%s)
note_reused = @for p in $(filter $(RES)/% $(DATA)/%,$^); do \
  if [ "$$(stat -c %Y "$$p")" -lt $(MAKE_START) ]; then echo "up to date, not rebuilt: $$p"; fi; done

.PHONY: all data train plots report pack help clean-data clean-results predict FORCE
FORCE:

all: pack

# The venv is made by the top-level Makefile; only when CC is the venv's python.
ifneq ($(USE_VENV),)
VENV_DEP := $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(MAKE) --no-print-directory -f Makefile install
endif

# ---------------------------------------------------------------------------
# Archives: downloaded (real) or generated (toy), both checked against lineage.
# ---------------------------------------------------------------------------
ifneq ($(IS_TOY),)
# The generator's own module (plus TOY_EXTRA_SRC, modules it borrows from).
TOY_SRC = $(CORE_SRC) $(pkg)/datasets/deterministic.py $(pkg)/datasets/toy_$(TOY_GENERATOR).py \
  $(TOY_EXTRA_SRC) preprocess/make_toy.py
$(TOY_ARCHIVES) &: $(TOY_SRC) | $(VENV_DEP)
	$(PY) preprocess/make_toy.py --dataset $(TOY_GENERATOR) $(addprefix --out ,$(TOY_ARCHIVES))
else
$(ARCHIVES): | $(VENV_DEP)
	$(PY) preprocess/fetch.py --lineage $(LINEAGE) $@
endif

# md5 verification (md5sum -c semantics) gates the unpacking.
$(DATA)/raw: $(ARCHIVES) $(LINEAGE) $(LINEAGE_SRC) | $(VENV_DEP)
	$(PY) preprocess/unpack.py --lineage $(LINEAGE) --out $@ $(UNPACK_ARGS) $(ARCHIVES)

# ---------------------------------------------------------------------------
# Slicing (normalised volumes + geometry + split) and distance maps.
# ---------------------------------------------------------------------------
SLICE_PARAMS = --adapter $(ADAPTER) --n-test $(N_TEST) --n-val $(N_VAL) $(SLICE_ARGS) \
  $(if $(filter-out none,$(CROP)),--crop $(CROP) --crop-margin $(CROP_MARGIN))
$(DATA)/cases: $(DATA)/raw $(SLICE_SRC) $$(call params_changed,$$@,$$(SLICE_PARAMS)) | $(VENV_DEP)
	$(PY) preprocess/slice.py --raw $< --out $@ $(SLICE_PARAMS)
	@$(call record_params,$@,$(SLICE_PARAMS))

$(DATA)/dist: $(DATA)/cases $(DIST_SRC) | $(VENV_DEP)
	$(note_reused)
	$(PY) preprocess/distmaps.py --cases $< --out $@ $(DIST_ARGS)

data: $(DATA)/dist $(DATA_EXTRA)

# ---------------------------------------------------------------------------
# Training: one generic recipe; each method sets LOSSES / DIST / OPTS as
# target-specific variables in the dataset makefile. Changing a knob (EPC, NET,
# LR, ...) or a method's variables retrains that method.
# ---------------------------------------------------------------------------
TRAIN_PARAMS = --net $(NET) $(addprefix --net-opt ,$(NET_OPTS)) --epochs $(EPC) --batch-size $(BS) --lr $(LR) --seed $(SEED) \
  --losses '$(LOSSES)' --dist-kind $(DIST) $(if $(CONTEXT),--context $(CONTEXT)) \
  $(if $(WEIGHT_MAP),--weight-map $(WEIGHT_MAP)) $(OPTS) $(TRAIN_ARGS) $(DEBUG)
$(METHOD_DIRS): $(RES)/%: $(DATA)/dist $(TRAIN_DEPS) $(TRAIN_SRC) $$(call params_changed,$$@,$$(TRAIN_PARAMS)) | $(VENV_DEP)
	$(note_reused)
	$(PY) -m segline.train --cases $(DATA)/cases --dist $(DATA)/dist --out $@ \
	  --lineage $(LINEAGE) --device $(DEVICE) --amp $(AMP) $(TRAIN_PARAMS)
	@$(call record_params,$@,$(TRAIN_PARAMS))

train: $(METHOD_DIRS)

# ---------------------------------------------------------------------------
# Plots, report, archive: each buildable alone.
# ---------------------------------------------------------------------------
CURVES := val_dice val_hd95 val_assd tra_loss val_loss $(EXTRA_CURVES)
PLOTS := $(addprefix $(RES)/,$(addsuffix .png,$(CURVES)) test_dice_boxplot.png overlays.png $(EXTRA_PLOTS))

$(addprefix $(RES)/,$(addsuffix .png,$(CURVES))): $(RES)/%.png: $(METHOD_DIRS) $(PLOT_SRC) | $(VENV_DEP)
	$(note_reused)
	$(PY) -m segline.plots.curves --metric $* --out $@ $(METHOD_DIRS)

$(RES)/test_dice_boxplot.png: $(METHOD_DIRS) $(PLOT_SRC) | $(VENV_DEP)
	$(note_reused)
	$(PY) -m segline.plots.boxplot --metric dice --out $@ $(METHOD_DIRS)

$(RES)/overlays.png: $(METHOD_DIRS) $(PLOT_SRC) | $(VENV_DEP)
	$(note_reused)
	$(PY) -m segline.plots.overlays --cases $(DATA)/cases --out $@ $(METHOD_DIRS)

plots: $(PLOTS)

$(RES)/report.md $(RES)/report.csv &: $(METHOD_DIRS) $(REPORT_SRC) | $(VENV_DEP)
	$(note_reused)
	$(PY) -m segline.report --dataset $(DS) --out $(RES)/report.md --csv $(RES)/report.csv $(REPORT_ARGS) $(METHOD_DIRS)

report: $(RES)/report.md

PACK_POINTER := archives/$(DS)-latest.txt
$(PACK_POINTER): $(PLOTS) $(RES)/report.md $(RES)/report.csv $(EXTRA_RESULTS) $(METHOD_DIRS) $(PACK_SRC) | $(VENV_DEP)
	$(PY) -m segline.pack --ds $(DS) --results $(RES) --outdir archives \
	  --commit "$$(git rev-parse --short=8 HEAD 2>/dev/null || echo nogit)" \
	  $(if $(filter 1 yes true,$(PACK_MODELS)),--models)
	@echo "plots:   $(RES)/*.png"
	@echo "report:  $(RES)/report.md"
	@echo "archive: archives/$$(cat $@)"

pack: $(PACK_POINTER)

# Predictions of the unlabelled cases (e.g. a challenge's test set) by each method.
PREDICT_DIRS := $(addprefix $(RES)/predict/,$(METHODS))
$(PREDICT_DIRS): $(RES)/predict/%: $(RES)/% $(CORE_SRC) $(pkg)/predict.py | $(VENV_DEP)
	$(PY) -m segline.predict --cases $(DATA)/cases --method $< --out $@ --device $(DEVICE) --amp $(AMP)

predict: $(PREDICT_DIRS)

clean-results:
	rm -rf $(RES) $(PACK_POINTER)

clean-data:
	rm -rf $(DATA)

# ---------------------------------------------------------------------------
# help: targets and knobs.
# ---------------------------------------------------------------------------
help:
	@printf '%s\n' \
	  "usage: make -f $(firstword $(MAKEFILE_LIST)) [TARGET] [KNOB=value ...]" \
	  "" \
	  "dataset $(DS) ($(if $(IS_TOY),embedded toy data,real data: $(ARCHIVES)))" \
	  "targets:" \
	  "  all (default)      everything, ending with the archive in archives/" \
	  "  $(ARCHIVES)  $(if $(IS_TOY),generate the toy archive(s),download when the lineage file gives a URL, else say where to get it)" \
	  "  $(DATA)/raw         md5-verify (lineage: $(LINEAGE)) and unpack safely" \
	  "  $(DATA)/cases       normalise, keep geometry, split train/val/test" \
	  "  $(DATA)/dist        signed distance maps (mm), 2D and 3D" \
	  "  data               everything up to the distance maps" \
	  "  $(RES)/<method>   train one method; methods: $(ALL_METHODS)$(if $(OPTIONAL_METHODS), (optional: $(OPTIONAL_METHODS)))" \
	  "  train              all selected methods (METHODS)" \
	  "  $(RES)/<plot>.png one plot: $(notdir $(PLOTS))" \
	  "  plots, report, pack" \
	  "  predict            each method's predictions of the unlabelled cases -> $(RES)/predict/<method>/" \
	  "  clean-results, clean-data   remove this dataset's results / data" \
	  "knobs (current value):" \
	  "  TOY=1              embedded toy data instead of the real archive ($(TOY))" \
	  "  METHODS=...        subset of methods ($(METHODS))" \
	  "  NET=...            ENet UNet ResidualUNet Dimwit$(if $(filter UNet3D,$(NET)), UNet3D) ($(NET))" \
	  "  NET_OPTS='k=v ...'  network options, e.g. 'base=16 depth=3' ($(NET_OPTS))" \
	  "  EPC=N              epochs ($(EPC))" \
	  "  CONTEXT=k          2.5D input: k neighbouring slices each side as channels ($(CONTEXT))" \
	  "  WEIGHT_MAP=w0,s    boundary weight maps (s in mm) for weighted losses, e.g. ce:1[weighted=true]" \
	  "  BS=N               batch size ($(BS))" \
	  "  LR=x               learning rate ($(LR))" \
	  "  SEED=N             seed for everything ($(SEED))" \
	  "  DEVICE=auto|cpu|cuda|cuda:N  ($(DEVICE))" \
	  "  AMP=auto|off|bf16|fp16       mixed precision ($(AMP))" \
	  "  DEBUG=--debug      tiny subset per loader" \
	  "  CFLAGS=-O          flags for python (-O removes assertions)" \
	  "  CC='srun ... python'  the python command ($(CC))" \
	  "  CROP=none|body|label  crop each case to the body or the labelled region ($(CROP)), CROP_MARGIN=mm ($(CROP_MARGIN))" \
	  "  N_TEST=N N_VAL=N   split sizes: first N_TEST cases test, next N_VAL validation ($(N_TEST), $(N_VAL))" \
	  "  DS=name ARCHIVES=... LINEAGE=...  another archive of the same format" \
	  "  PACK_MODELS=1      include checkpoints in the archive" \
	  "  $(DATASET_KNOBS_HELP)" \
	  "make flags: -n (dry run), -B (rebuild all), -j2 (methods in parallel)"
