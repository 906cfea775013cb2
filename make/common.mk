# segline — generic rules shared by every dataset makefile (spleen.make, isles.make,
# vessels.make). A dataset makefile sets what differs (archives, lineage, adapter,
# methods as target-specific variables, defaults) and then includes this file.
#
# The graph (docs/ARCHITECTURE.md):
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
#   TOY_VARIANTS    (optional) named toy variants: TOY=<variant> selects one (DS becomes
#                   $(DS_NAME)-<variant>-toy; the makefile picks its TOY_* by $(TOY))
#   IS_TOY          toy or real data: include make/toy.mk before the defaults that use it
#   ADAPTER         the slicing adapter (msd, isles)
#   ALL_METHODS     every method it declares (results/$(DS)/<method> targets); each a
#                   name (make/names.mk), checked when make reads the makefile
# and may set (hooks for extra stages):
#   DATA_EXTRA      more data stages `data` builds (e.g. vessels' MIP, pseudo-labels)
#   TRAIN_DEPS      more prerequisites of every training (e.g. the content stamps of
#                   those stages: $(call stamp_of,...), see "Early cutoff" below)
#   EXTRA_CURVES    more per-epoch curves (e.g. val_cldice)
#   NO_CURVES       shared curves a dataset has no values for (vertebrae: val_hd95)
#   EXTRA_RESULTS   more files under results/$(DS) to build and pack (not recorded
#                   stages: the pack depends on them, not on a stamp)
#   REPORT_ARGS     extra report options (e.g. --metrics ... --reference full)
#   TRAINER         the training module (default segline.train), same options
#   REPORTER        the report module (default segline.report), same options
#   PLOTTER         the figures module (default segline.plots.figures), same options
#                   (vessels.make: its modules register mip_dice, then run the core's)
#   OVERLAY_ARGS    extra overlay options (e.g. --instances: vertebrae, sagittal)

SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDEXPANSION:
.DEFAULT_GOAL := all
MAKEFLAGS += --no-builtin-rules

# ---------------------------------------------------------------------------
# Knobs (command line: make -f spleen.make NET=Dimwit EPC=5 DEBUG=1)
# ---------------------------------------------------------------------------
VENV ?= .venv
# CC: the python command (e.g. CC='srun --gres=gpu:1 python'), CFLAGS: its flags (-O).
# Only the command line or a makefile sets them: make predefines CC as the C compiler
# and shells export CC/CFLAGS for C builds (conda: CFLAGS='-O2 -pipe'), which must never
# reach python.
ifeq ($(filter command line file override,$(origin CC)),)
CC := $(VENV)/bin/python
USE_VENV := 1
endif
ifeq ($(filter command line file override,$(origin CFLAGS)),)
CFLAGS :=
endif
TOY ?=
SEED ?= 0
# SEEDS='0 1 2': every method trained once per seed, each its own target
# $(RES)/<method>/seed<k> (a run of its own, results/<ds>/seeds/ unless RUN names
# another), so curves get a seed band and the report per-seed and pooled numbers.
# Empty: one training per method with SEED, in results/<ds>/<method> as always.
SEEDS ?=
# FOLDS=k: k-fold cross-validation. The slicing stage deals the labelled cases to k
# folds (split.json "folds", splits_final.json); every method is trained once per fold,
# each its own target $(RES)/<method>/fold<i> (with SEEDS: $(RES)/<method>/fold<i>/seed<s>),
# tested on fold i's held-out cases, so every case is tested exactly once, out of fold
# (a run of its own, results/<ds>/folds/ unless RUN names another). Empty: no folds.
FOLDS ?=
DEVICE ?= auto
# DEBUG=1 (or yes, true, or the older spelling --debug): a tiny subset per loader, the
# trainer's --debug; 0, no, false or empty: off. DEBUG is also a name other tools read
# from the environment (DEBUG=app:*): a value from there that is none of these is
# ignored, one on the command line or in a makefile is an error.
DEBUG ?=
DEBUG_ON_OFF := 0 no false 1 yes true --debug
ifneq ($(filter-out $(DEBUG_ON_OFF),$(DEBUG)),)
ifeq ($(origin DEBUG),environment)
override DEBUG :=
else
$(error DEBUG=$(DEBUG): use DEBUG=1 (a tiny subset per loader) or DEBUG=0 (off))
endif
endif
IS_DEBUG := $(if $(filter 1 yes true --debug,$(DEBUG)),1)
PACK_MODELS ?=
AMP ?= auto
# torch.compile of the network: 1 (or on), graphs (CUDA graphs); recorded, so it retrains.
COMPILE ?=
# torch threads per training, whatever -j: they change the last bits of the weights, so
# THREADS is passed to the trainer (recorded: changing it retrains). make -jN with the
# default 1 runs N one-thread trainings side by side; THREADS=N for one training alone.
THREADS ?= 1
# Test-only metrics: scored by the evaluation stage in source geometry, not by the
# training (e.g. precision,recall); recorded in the evaluation stage's command.
EVAL_METRICS ?=
# DataLoader processes per training: auto (from the cores and -j) or N. Scheduling only:
# results are byte-identical for any value, so it is not recorded (never retrains).
WORKERS ?= auto
export SEGLINE_WORKERS := $(WORKERS)
CONTEXT ?=
WEIGHT_MAP ?=
# Training recipe (all off by default; recorded): augmentation none|light|strong, LR
# schedule const|poly|cosine|halve, epochs of linear warm-up, decoupled weight decay.
AUG ?= none
SCHED ?= const
WARMUP ?= 0
WD ?= 0
# An absent class's signed distance map (the distance-map stage; recorded): zero (0
# everywhere, the boundary-loss reference code's: no gradient from that class; the
# default) or diagonal (+ the field-of-view diagonal in mm: on sparse lesions it can
# collapse training to empty predictions, bench/RESULTS.md "Absent-class conventions"). Each convention has its own store,
# $(DATA)/dist (zero) and $(DATA)/dist-diagonal (diagonal): ABSENT picks the store every
# method trains on, and a method may pick its own in the dataset makefile
# ($(call method,X): ABSENT := diagonal), so both conventions train in one run and
# changing one method's retrains that method only.
ABSENT ?= zero
ABSENTS := diagonal zero
ifneq ($(filter-out $(ABSENTS),$(ABSENT))$(word 2,$(ABSENT)),)
$(error ABSENT=$(strip $(ABSENT)): use ABSENT=diagonal (+ field-of-view diagonal) or ABSENT=zero (0, as the reference code))
endif
# Crop each case before storing it: none, body (CT above -500 HU) or label, + margin mm.
# label crops training and validation cases only; a test case (of any fold) is cropped
# to the body from its image alone, so no test case is cropped by its ground truth.
CROP ?= none
CROP_MARGIN ?= 10
# Normalisation per channel, overriding the dataset.json modality: ct (the WINDOW),
# zscore or percentile; one for all channels or one per channel (ct,zscore). Empty: by
# modality ("CT" windowed, others percentiles).
NORM ?=
# The train/val/test split (recorded; the slicing stage, src/segline/preprocess/split.py):
# SPLIT=ordered (natural order of the case ids) or random (seeded by SPLIT_SEED);
# SPLIT_FILE=<nnU-Net splits_final.json>: test = fold SPLIT_FOLD's val, val = N_VAL of its
# train; STRATIFY=<attribute>: test and val from every value in proportion (built in:
# prefix, modality; or a column of STRATIFY_FILE=<csv case,attribute>).
SPLIT ?= ordered
SPLIT_SEED ?= 0
SPLIT_FILE ?=
SPLIT_FOLD ?= 0
STRATIFY ?=
STRATIFY_FILE ?=
# One word of SPLIT_RULES (empty: ordered), checked before any recipe runs.
SPLIT_RULES := ordered random
ifneq ($(filter-out $(SPLIT_RULES),$(SPLIT))$(word 2,$(SPLIT)),)
$(error SPLIT=$(strip $(SPLIT)): use SPLIT=ordered (natural order of the case ids) or SPLIT=random (a permutation seeded by SPLIT_SEED))
endif
# Refuse archives that declare more than UNPACK_RATIO times their own size (bombs).
UNPACK_RATIO ?= 200
# Refuse a file of a dataset folder (DATASET_DIR) over MAX_FILE_GB GB (10^9 bytes; 0: no
# limit) before hashing or copying it. A guard that changes no output byte: it reaches
# the manifest and the copy through the environment, so no record holds it.
MAX_FILE_GB ?= 8
export SEGLINE_MAX_FILE_GB := $(MAX_FILE_GB)
# A named run: results/<ds>/<RUN>/ with its own trainings, plots, report and archive,
# beside the default run (results/<ds>/). A DEBUG run lands in RUN=debug by default,
# a SEEDS run in RUN=seeds, both in RUN=debug-seeds (a single-seed folder
# results/<ds>/<method> holds files, not seed folders, so the two layouts never share
# a folder: checked below). RUN, DS and the methods are names (make/names.mk):
# letters, digits, '-' and '_'.
# A FOLDS run lands in RUN=folds (folds-seeds, debug-folds, debug-folds-seeds).
fold_space := $(subst x, ,x)
RUN ?= $(subst $(fold_space),-,$(strip $(if $(IS_DEBUG),debug) $(if $(strip $(FOLDS)),folds) $(if $(strip $(SEEDS)),seeds)))

ifneq ($(filter-out 0 no false 1 yes true $(TOY_VARIANTS),$(TOY)),)
$(error TOY=$(TOY): use TOY=1 (the toy)$(if $(TOY_VARIANTS), or a variant: $(TOY_VARIANTS)))
endif
# IS_TOY (make/toy.mk): the dataset makefile included it before its defaults.
ifeq ($(filter make/toy.mk,$(MAKEFILE_LIST)),)
include make/toy.mk
endif
# A dataset folder on disk instead of an archive: DATASET_DIR=<MSD task folder or nnU-Net
# v2 raw dataset>, NNUNET_DATASET=<nnUNet_raw/DatasetXXX_Name> its nnU-Net spelling. The
# layout comes from dataset.json (nnU-Net v2 declares file_ending); the lineage is a
# manifest computed on every make (src/segline/lineage/manifest.py): computed, not pinned.
NNUNET_DATASET ?=
DATASET_DIR ?= $(NNUNET_DATASET)
ifneq ($(strip $(DATASET_DIR)),)
ifneq ($(IS_TOY)$(filter-out 1,$(words $(DATASET_DIR))),)
$(error DATASET_DIR=$(DATASET_DIR): one folder, a path without spaces, and not with TOY)
endif
DS ?= $(notdir $(patsubst %/,%,$(DATASET_DIR)))
ARCHIVES :=
LINEAGE := data/$(DS)/manifest.md5
ifeq ($(ADAPTER),msd)
ADAPTER := $(if $(NNUNET_DATASET)$(findstring "file_ending",$(file <$(DATASET_DIR)/dataset.json)),nnunet,msd)
endif
endif
ifneq ($(IS_TOY),)
DS ?= $(DS_NAME)$(addprefix -,$(filter $(TOY_VARIANTS),$(TOY)))-toy
ARCHIVES ?= $(TOY_ARCHIVES)
LINEAGE ?= $(TOY_LINEAGE)
else
DS ?= $(DS_NAME)
ARCHIVES ?= $(REAL_ARCHIVES)
LINEAGE ?= $(REAL_LINEAGE)
endif
DATA := data/$(DS)
RES := results/$(DS)$(if $(RUN),/$(RUN))
# The run's name: archive name prefix and report title, <ds> or <ds>.<run> ('.' is in
# no name, make/names.mk, so DS=pg RUN=x and DS=pg-x never share an archive name).
include make/names.mk
NAME := $(DS)$(if $(RUN),$(NAME_SEP)$(RUN))
METHODS ?= $(ALL_METHODS)
# Names (make/names.mk): DS, RUN and every method become folder and file names and
# reach recipes unquoted (clean-results: rm -rf $(RES)), so each is checked here, when
# make reads the makefile, before any rule uses it; one line and exit 2 otherwise.
$(call check_name,DS,$(DS),$(if $(and $(DATASET_DIR),$(filter file,$(origin DS))), (DS is DATASET_DIR's folder name here: name the dataset with DS=<name>)))
$(foreach m,$(ALL_METHODS) $(OPTIONAL_METHODS),$(call check_name,method,$(m), (ALL_METHODS or OPTIONAL_METHODS of $(firstword $(MAKEFILE_LIST)))))
reserved_methods := $(strip $(foreach m,$(ALL_METHODS) $(OPTIONAL_METHODS),$(if $(or $(filter predict eval seeds folds debug,$(m)),$(call name_seed_like,$(m)),$(call name_fold_like,$(m))),$(m))))
ifneq ($(reserved_methods),)
$(error method $(firstword $(reserved_methods)) of $(firstword $(MAKEFILE_LIST)): a method may not be named predict, eval, seeds, folds, debug, seed<k> or fold<k> (the predictions', evaluations' and default runs' folders, a seed's or a fold's folder))
endif
ifneq ($(RUN),)
$(call check_name,RUN,$(RUN))
ifneq ($(filter $(RUN),$(ALL_METHODS) $(OPTIONAL_METHODS)),)
$(error RUN=$(RUN) is a method's folder name (results/$(DS)/$(RUN)); pick another run name)
endif
ifeq ($(RUN),predict)
$(error RUN=predict is the predictions' folder name (results/$(DS)/predict); pick another run name)
endif
ifeq ($(RUN),eval)
$(error RUN=eval is the evaluations' folder name (results/$(DS)/eval); pick another run name)
endif
endif
# A seed is digits only, without a leading zero (seed07 and seed7 would be one seed).
nondigits = $(subst 0,,$(subst 1,,$(subst 2,,$(subst 3,,$(subst 4,,$(subst 5,,$(subst 6,,$(subst 7,,$(subst 8,,$(subst 9,,$1))))))))))
not_a_seed = $(if $(call nondigits,$1),$1,$(if $(filter-out 0,$(filter 0%,$1)),$1))
bad_seeds := $(strip $(foreach s,$(SEEDS),$(call not_a_seed,$(s))))
ifneq ($(bad_seeds),)
$(error SEEDS: $(bad_seeds): each seed is an integer >= 0 written without leading zeros, e.g. SEEDS='0 1 2')
endif
ifneq ($(words $(SEEDS)),$(words $(sort $(SEEDS))))
$(error SEEDS=$(SEEDS): a seed is listed twice)
endif
# FOLDS: one integer >= 2 without leading zeros; it excludes SPLIT_FILE (whose folds
# are given) and each of its folds is the word fold<i> of FOLD_LIST (0 .. k-1).
ifneq ($(strip $(FOLDS)),)
ifneq ($(or $(word 2,$(FOLDS)),$(call not_a_seed,$(strip $(FOLDS))),$(filter 0 1,$(strip $(FOLDS)))),)
$(error FOLDS=$(strip $(FOLDS)): the number of cross-validation folds is one integer >= 2, e.g. FOLDS=5)
endif
ifneq ($(SPLIT_FILE),)
$(error FOLDS=$(strip $(FOLDS)) and SPLIT_FILE=$(SPLIT_FILE) exclude each other: FOLDS deals the cases to folds itself, SPLIT_FILE takes one given fold)
endif
endif
# $(call fold_range,K,0): the words 0 1 ... K-1.
fold_range = $(if $(word $1,$2),$2,$(call fold_range,$1,$2 $(words $2)))
FOLD_LIST := $(if $(strip $(FOLDS)),$(call fold_range,$(strip $(FOLDS)),0))
# One training folder per method (and fold, and seed): the targets of `train`.
method_folds = $(if $(strip $(FOLDS)),$(foreach i,$(FOLD_LIST),$1/fold$(i)),$1)
METHOD_DIRS := $(foreach d,$(foreach m,$(METHODS),$(call method_folds,$(RES)/$(m))),$(if $(strip $(SEEDS)),$(foreach s,$(SEEDS),$(d)/seed$(s)),$(d)))
# $(call method,NAME): the targets a method's variables go on, in every layout:
#   $(call method,gdl): LOSSES := gdl:1
method = $(RES)/$1 $(RES)/$1/seed% $(RES)/$1/fold%
# The seed of the training being built: from its seed<k> folder, else SEED.
RUN_SEED = $(if $(strip $(SEEDS)),$(patsubst seed%,%,$(notdir $@)),$(SEED))
# The fold of the training being built: the fold<i> folder below its method's folder.
RUN_FOLD = $(patsubst fold%,%,$(word 2,$(subst /, ,$(patsubst $(RES)/%,%,$@))))
unknown_methods := $(filter-out $(ALL_METHODS) $(OPTIONAL_METHODS),$(METHODS))
ifneq ($(unknown_methods),)
$(error unknown METHODS: $(unknown_methods); known: $(ALL_METHODS) $(OPTIONAL_METHODS))
endif
ifeq ($(strip $(METHODS)),)
$(error METHODS is empty; known: $(ALL_METHODS) $(OPTIONAL_METHODS))
endif
ifneq ($(words $(METHODS)),$(words $(sort $(METHODS))))
$(error METHODS=$(strip $(METHODS)): a method is listed twice)
endif
# The two layouts never share a folder: a single-seed training folder $(RES)/<method>
# holds files (args.json, ...) and its atomic rebuild replaces the whole folder, so
# seed<k> trainings are never written inside it and a single-seed training never
# replaces a folder of seed<k> trainings. Checked here for every selected method (the
# trainer checks again before it writes anything: segline.train.layout); clean-results,
# clean-data and help stay possible.
ifneq ($(if $(MAKECMDGOALS),$(filter-out help clean-results clean-data,$(MAKECMDGOALS)),all),)
# Fold trainings $(RES)/<method>/fold<i> never share a method folder with the others.
ifneq ($(strip $(FOLDS)),)
layout_clash := $(firstword $(foreach m,$(METHODS),$(wildcard $(RES)/$(m)/args.json $(RES)/$(m)/seed[0-9]*)))
ifneq ($(layout_clash),)
$(error $(patsubst %/,%,$(dir $(layout_clash))) holds $(if $(filter %args.json,$(layout_clash)),a single training (args.json),seed<k> trainings) and fold<i> trainings never go beside it: train FOLDS in another run, e.g. RUN=$(if $(RUN),$(RUN)-folds,folds))
endif
else
layout_clash := $(firstword $(foreach m,$(METHODS),$(wildcard $(RES)/$(m)/fold[0-9]*)))
ifneq ($(layout_clash),)
$(error $(patsubst %/,%,$(dir $(layout_clash))) holds fold<i> trainings ($(notdir $(layout_clash))) of a cross-validation: give FOLDS=k, or train in another run, e.g. RUN=$(if $(RUN),$(RUN)-single,single))
endif
endif
ifneq ($(strip $(SEEDS)),)
layout_clash := $(firstword $(foreach m,$(METHODS),$(wildcard $(call method_folds,$(RES)/$(m))/args.json)))
ifneq ($(layout_clash),)
$(error $(patsubst %/,%,$(dir $(layout_clash))) holds a single-seed training (args.json) and seed<k> trainings never go inside one: train SEEDS in another run, e.g. RUN=$(if $(filter seeds,$(RUN)),seeds2,$(if $(RUN),$(RUN)-seeds,seeds)))
endif
else
layout_clash := $(firstword $(foreach m,$(METHODS),$(wildcard $(addsuffix /seed[0-9]*,$(call method_folds,$(RES)/$(m))))))
ifneq ($(layout_clash),)
$(error $(patsubst %/,%,$(dir $(layout_clash))) holds seed<k> trainings ($(notdir $(layout_clash))) that a single-seed training would replace: train it in another run, e.g. RUN=$(if $(RUN),$(RUN)-single,single) (or add to the seeds with SEEDS=...))
endif
endif
endif
PY := $(CC) $(CFLAGS)
# GPUS=0,1,2,3: each training takes a free GPU of the list (a GPU listed twice holds
# two); GPU_LOCKS: the token folder (src/segline/train/gpus.py). Scheduling only: both
# reach the trainer through the environment, never a command, so no record holds them.
GPUS ?=
GPU_LOCKS ?=
export SEGLINE_GPUS := $(GPUS)
export SEGLINE_GPU_LOCKS := $(GPU_LOCKS)
# CACHE=<folder>: the result cache (src/segline/cache.py; README "The result cache"). A
# stage whose record, code and input contents were built once, here or by anyone who
# shares the folder, is restored from it instead of built again. Default: cache/ in the
# checkout; CACHE= turns it off; a path on a shared filesystem shares it in a lab.
# CACHE_MAX_GB: its size cap (least recently used entries go first). Scheduling only:
# both reach the stages through the environment, never a command, so no record holds them.
CACHE ?= cache
CACHE_MAX_GB ?= 20
export SEGLINE_CACHE := $(CACHE)
export SEGLINE_CACHE_MAX_GB := $(CACHE_MAX_GB)
# The python command reaches the provenance (a prefix such as srun is recorded there).
export SEGLINE_CC := $(CC)
# Recipes run this checkout's code, whatever else is installed: the code recorded in
# the dependency files below is the code that ran.
export PYTHONPATH := $(CURDIR)/src$(if $(PYTHONPATH),:$(PYTHONPATH))

# Kervadec et al.'s rebalanced schedule, for loss specs: (1-a)*regional + a*term with
# a = 0.01*epoch, epochs counted from 1, capped at 0.99 (usage: boundary:0.01$(REBALANCE)).
# The published code's StealWeight instead: REBALANCE='[schedule=steal;step=0.01]' on
# make's command line (max(0.1, 1-0.01e)*regional + (0.01+0.01e)*term, no cap).
REBALANCE := [schedule=rebalance;step=0.01;cap=0.99]

# ---------------------------------------------------------------------------
# Lineage (src/segline/stage.py, docs/ARCHITECTURE.md). Every stage rule sets
#   TARGET: private CMD = <script or -m module> <arguments>
# and runs `$(PY) $(CMD)`; `$$(stale)` among its prerequisites. The CLI, run under
# make, locks the target (flock on dir/.name.lock), builds it atomically and then
# writes beside it: .name.sha256 (content digest), .name.d (the project source files
# it imported, included below: a change of any of them rebuilds the target) and
# .name.cmd (the record: CFLAGS and CMD as expanded). `stale` is the phony STALE when
# the .d file is missing or the record differs from the command make would run now, so
# a changed knob rebuilds exactly the stages whose command it reaches.
# Records survive failure: the old ones are removed only when the new target is
# renamed into place (segline.atomic), so a stage that fails before leaves the old
# target and its records as they were. Locks re-check: under the lock, a target that
# another make built meanwhile with the same record, newer than SEGLINE_PREREQS and the
# code of its .d, is not built again (unless make -B, or the rule lists FORCE itself).
# ---------------------------------------------------------------------------
# $(call side,TARGET,KIND): the side file dir/.name.KIND of a target.
side = $(dir $1).$(notdir $1).$2
# Early cutoff (Ninja's restat, Shake's unchanged output): a recorded stage also writes
# dir/.name.content, its content digest, rewritten only when the digest changes (so its
# mtime is the last time the CONTENT changed). Every dependent of a recorded stage
# target depends on that stamp, $(call stamp_of,TARGETS), not on the target: a stage
# rebuilt to the same bytes (a comment edited in its code) leaves its stamp as it was,
# make re-reads the stamp's mtime after the target's recipe ran and rebuilds nothing
# after it. Not for what no stage records (a downloaded archive, a lineage or split
# file, DATASET_DIR's manifest, rewritten only on change anyway). $< and $^ of such a
# dependent name stamps: recipes name their inputs in CMD.
stamp_of = $(foreach t,$1,$(call side,$t,content))
# The stamp's rule: a normal prerequisite on its target (so it is re-read once the
# target's recipe ran) and a recipe marked '+' (run under -n and -q too, so both re-read
# the stamp and plan what a real make would do) that is empty unless the stamp is
# missing beside an existing target: one built before stamps, whose stamp
# segline.stage_stamp writes from its recorded digest with the target's own mtime (its
# dependents, built after it, stay). A pattern without '/' matches a file name in any
# folder, its directory put back on the prerequisite: data/x/.cases.content needs
# data/x/cases; no other rule or file of the project ends in .content.
.%.content: %
	+@$(if $(wildcard $@),,$(if $(wildcard $<),$(PY) -m segline.stage_stamp $<))
# $(call same,A,B): non-empty when A and B are equal strings (modulo outer spaces).
same = $(and $(findstring x$(strip $1)x,x$(strip $2)x),$(findstring x$(strip $2)x,x$(strip $1)x))
# Only rules with a CMD are recorded stages (a download, a copy by the shell are not).
RECORD = $(if $(strip $(CMD)),$(strip $(CFLAGS) $(CMD)))
stale_target = $(firstword $(or $(TARGETS),$@))
stale = $(if $(and $(wildcard $(call side,$(stale_target),d)),$(call same,$(file <$(call side,$(stale_target),cmd)),$(RECORD))),,STALE)
# STALE, not FORCE: the CLI tells "stale records" from "always rebuilt" (FORCE listed).
.PHONY: STALE
STALE:
# What the CLI reads (segline.stage): its targets, its record, every prerequisite make
# compared it with, whether its rule is always rebuilt, its data inputs, make's start.
MAKE_START := $(shell date +%s.%N)
export SEGLINE_TARGETS = $(or $(TARGETS),$@)
export SEGLINE_RECORD = $(RECORD)
export SEGLINE_PREREQS = $(filter-out FORCE STALE,$^)
export SEGLINE_ALWAYS = $(if $(filter FORCE,$^),1)
export SEGLINE_INPUTS = $(filter $(DATA)/% $(RES)/%,$^)
export SEGLINE_MAKE_START := $(MAKE_START)
# A stage the result cache must not hold (its command writes more than its targets)
# sets NOT_CACHED as a private target-specific variable.
export SEGLINE_NO_CACHE = $(NOT_CACHED)

.PHONY: all data train eval plots report pack help clean-data clean-results predict FORCE \
  cache-prune cache-verify
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
# What raw depends on: a generated toy archive is a recorded stage (its stamp), a
# downloaded one is not (its md5 in the lineage file decides).
ARCHIVE_DEPS = $(if $(IS_TOY),$(call stamp_of,$(ARCHIVES)),$(ARCHIVES))
ifneq ($(IS_TOY),)
$(TOY_ARCHIVES): private CMD = preprocess/make_toy.py --dataset $(TOY_GENERATOR) $(addprefix --out ,$(TOY_ARCHIVES))
$(TOY_ARCHIVES): private TARGETS = $(TOY_ARCHIVES)
$(TOY_ARCHIVES) &: $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
else
# A download is never redone for a code change or a knob: its md5 in the lineage file
# decides (no stage records; fetch.py locks the archive itself while downloading).
$(ARCHIVES): | $(VENV_DEP)
	$(PY) preprocess/fetch.py --lineage $(LINEAGE) $@
endif

ifneq ($(strip $(DATASET_DIR)),)
# A folder: its manifest runs on every make (FORCE) and is rewritten only when its
# content changes (same file, same mtime otherwise: nothing downstream rebuilds); a
# file whose stat is unchanged since the last make is not read again (the stat cache
# $(DATA)/.manifest.md5.stat, as git's index). raw copies the files (permissions and
# holes kept), each md5-checked against the manifest; both refuse a file over
# MAX_FILE_GB. '+': it runs under -n and -q too, so they plan (and answer) from the
# folder as it is.
$(LINEAGE): private CMD = -m segline.lineage.manifest --out $(LINEAGE) $(DATASET_DIR)
$(LINEAGE): FORCE | $(VENV_DEP)
	+$(PY) $(CMD)
$(DATA)/raw: private CMD = -m segline.lineage.copyfolder --manifest $(LINEAGE) --out $(DATA)/raw $(DATASET_DIR)
$(DATA)/raw: $(LINEAGE) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
else
# md5 verification (md5sum -c semantics) gates the unpacking. A lineage with a
# '# record: FILE' line records the md5 of an archive it does not list on first use and
# verifies it against FILE afterwards (src/segline/lineage/record.py; vertebrae.make).
$(DATA)/raw: private CMD = preprocess/unpack.py --lineage $(LINEAGE) --out $(DATA)/raw \
  $(if $(UNPACK_RATIO),--max-ratio $(UNPACK_RATIO)) $(UNPACK_ARGS) $(ARCHIVES)
$(DATA)/raw: $(ARCHIVE_DEPS) $(LINEAGE) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
# Recording md5s on first use writes the record file too: such a stage is never
# restored from the result cache (its side effect would be skipped).
$(DATA)/raw: private NOT_CACHED = $(if $(findstring record:,$(file <$(LINEAGE))),1)
endif

# ---------------------------------------------------------------------------
# Slicing (normalised volumes + geometry + split) and distance maps.
# ---------------------------------------------------------------------------
$(DATA)/cases: private CMD = preprocess/slice.py --raw $(DATA)/raw --out $(DATA)/cases \
  --adapter $(ADAPTER) --n-test $(N_TEST) --n-val $(N_VAL) $(SLICE_ARGS) \
  $(if $(filter-out none,$(CROP)),--crop $(CROP) --crop-margin $(CROP_MARGIN))
$(DATA)/cases: $(call stamp_of,$(DATA)/raw) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
# The split knobs (recorded); the splits and stratify files are prerequisites too, so
# editing one re-slices (split.json records their sha256).
$(DATA)/cases: private CMD += $(if $(filter-out ordered,$(SPLIT)),--split $(SPLIT) --split-seed $(SPLIT_SEED)) \
  $(if $(SPLIT_FILE),--split-file $(SPLIT_FILE) --split-fold $(SPLIT_FOLD)) \
  $(if $(STRATIFY),--stratify $(STRATIFY)) $(if $(STRATIFY_FILE),--stratify-file $(STRATIFY_FILE))
$(DATA)/cases: $(SPLIT_FILE) $(STRATIFY_FILE)
# NORM: the normalisation per channel instead of the dataset.json modality (recorded).
$(DATA)/cases: private CMD += $(if $(NORM),--norm $(NORM))
# FOLDS: the k-fold assignment of the labelled cases (recorded in split.json).
$(DATA)/cases: private CMD += $(if $(strip $(FOLDS)),--folds $(strip $(FOLDS)))

# One store per ABSENT convention (recorded in distmaps.json): $(DATA)/dist holds the
# zero maps, $(DATA)/dist-diagonal the diagonal ones; a store is built when a training
# (or `data`, for the ABSENT knob's) reads it. $(call dist_store,CONVENTION): its folder
# (an unknown convention, e.g. a method's ABSENT := none, stops make with one line).
dist_store = $(if $(filter-out $(ABSENTS),$1)$(word 2,$1),$(error ABSENT=$(strip $1)$(if $@, (for $@)): use diagonal or zero),$(DATA)/dist$(if $(filter diagonal,$1),-diagonal))
DIST_STORES := $(foreach a,$(ABSENTS),$(call dist_store,$(a)))
$(DIST_STORES): private CMD = preprocess/distmaps.py --cases $(DATA)/cases --out $@ $(DIST_ARGS) \
  --absent $(if $(filter $(DATA)/dist-diagonal,$@),diagonal,zero)
$(DIST_STORES): $(call stamp_of,$(DATA)/cases) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)

data: $(call dist_store,$(ABSENT)) $(DATA_EXTRA)

# ---------------------------------------------------------------------------
# Training: one generic recipe; each method sets LOSSES / DIST / OPTS as
# target-specific variables in the dataset makefile. Every knob it passes (EPC, NET,
# LR, DEVICE, AMP, ...) is in the record, so changing one retrains.
# ---------------------------------------------------------------------------
# The training module: segline.train, or a dataset's own trainer that takes the same
# options (vertebrae.make: segline.experiments.vertebrae.train).
TRAINER ?= segline.train
TRAIN_PARAMS = --net $(NET) $(addprefix --net-opt ,$(NET_OPTS)) --epochs $(EPC) --batch-size $(BS) --lr $(LR) --seed $(RUN_SEED) \
  --threads $(THREADS) \
  --losses '$(LOSSES)' --dist-kind $(DIST) $(if $(CONTEXT),--context $(CONTEXT)) \
  $(if $(WEIGHT_MAP),--weight-map $(WEIGHT_MAP)) $(if $(filter-out 0 off no,$(COMPILE)),--compile $(COMPILE)) \
  $(if $(filter-out none,$(AUG)),--aug $(AUG)) $(if $(filter-out const,$(SCHED)),--sched $(SCHED)) \
  $(if $(filter-out 0,$(WARMUP)),--warmup $(WARMUP)) $(if $(filter-out 0 0.0,$(WD)),--wd $(WD)) \
  $(OPTS) $(TRAIN_ARGS) $(if $(IS_DEBUG),--debug)$(if $(strip $(FOLDS)), --fold $(RUN_FOLD))
# --dist: the store of the method's ABSENT (the knob's, or the method's own: a target-
# specific variable, which reaches the prerequisites through secondary expansion).
$(METHOD_DIRS): private CMD = -m $(TRAINER) --cases $(DATA)/cases --dist $(call dist_store,$(ABSENT)) --out $@ \
  --lineage $(LINEAGE) --device $(DEVICE) --amp $(AMP) $(TRAIN_PARAMS)
# Every store a stage reads is its prerequisite (the case store too, not only through the
# distance maps: a re-slice that leaves the maps' content as it was, a new WINDOW, still
# retrains), and the lineage file whose md5 lines the provenance copies.
$(METHOD_DIRS): $(RES)/%: $$(call stamp_of,$(DATA)/cases $$(call dist_store,$$(ABSENT))) $(LINEAGE) $(TRAIN_DEPS) \
  $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)

train: $(METHOD_DIRS)

# ---------------------------------------------------------------------------
# Evaluation in each case's source geometry (src/segline/eval_stage.py): per training
# folder, $(RES)/eval/<method> ($(RES)/eval/<method>/seed<k>) holds the test cases
# predicted by the predictor `predict` uses (best.pt), written back to each case's
# source geometry (the files a user gets), metrics.csv scoring them against the
# original label files of $(DATA)/raw (their own spacing, never resampled or cropped)
# and grid.json. The report, its statistics, report_cases.csv and the test box plot
# read it; the training grid's test/metrics.csv stays the report's secondary table and
# validation (selection) stays on the training grid. Metric code that training does not
# import is in these stages' .d files only: changing it re-evaluates, never retrains.
# EVAL_METRICS=a,b (a knob): per-class metrics of the registry
# (src/segline/metrics/registry.py) scored by this stage only, after the training's,
# and reported: their code is in the evaluation stages' .d files only. A training's own
# metrics (vessels' mip_dice) are scored as its trainer class says (args.json trainer).
# SOURCE_EVAL := no (a dataset makefile's hook, set before including this file) keeps
# the test numbers on the training grid, for a dataset of yours whose test metrics the
# evaluation stage cannot compute (every shipped pipeline is evaluated here).
# ---------------------------------------------------------------------------
EVAL_DIRS := $(if $(filter no,$(SOURCE_EVAL)),,$(patsubst $(RES)/%,$(RES)/eval/%,$(METHOD_DIRS)))
EVAL_ARGS := $(addprefix --eval ,$(EVAL_DIRS))
ifneq ($(EVAL_DIRS),)
$(EVAL_DIRS): private CMD = -m segline.eval_stage --cases $(DATA)/cases --raw $(DATA)/raw \
  --method $(patsubst $(RES)/eval/%,$(RES)/%,$@) --out $@ --device $(DEVICE) --amp $(AMP) \
  $(if $(EVAL_METRICS),--extra-metrics $(EVAL_METRICS))
$(EVAL_DIRS): $(RES)/eval/%: $$(call stamp_of,$(RES)/$$* $(DATA)/cases $(DATA)/raw) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
endif

eval: $(EVAL_DIRS)

# ---------------------------------------------------------------------------
# Plots, report, archive: each buildable alone; each names the methods it covers,
# so METHODS=... rebuilds them.
# ---------------------------------------------------------------------------
CURVES := $(filter-out $(NO_CURVES),val_dice val_hd95 val_assd tra_loss val_loss lr alpha epoch_time) $(EXTRA_CURVES)
CURVE_PLOTS := $(addprefix $(RES)/,$(addsuffix .png,$(CURVES)))
# One progress figure per method (src/segline/plots/progress.py), from its folder(s).
PROGRESS_PLOTS := $(foreach m,$(METHODS),$(RES)/progress_$(m).png)
PLOTS := $(CURVE_PLOTS) $(addprefix $(RES)/,test_dice_boxplot.png overlays.png) \
  $(PROGRESS_PLOTS)

# The curves, the boxplot and the progress figures come from one process
# (src/segline/plots/figures.py: most of a plotting process is importing matplotlib);
# asking for one of them builds them all.
FIGURES := $(CURVE_PLOTS) $(RES)/test_dice_boxplot.png $(PROGRESS_PLOTS)
comma := ,
empty :=
space := $(empty) $(empty)
# The figures and report modules (dataset makefile hooks, like TRAINER): the core's,
# or an experiment's that registers its metrics before running the core's. Set by a
# makefile or the command line only (a variable of that name in the environment is
# no request).
hook_or = $(or $(if $(filter file command line override,$(origin $1)),$($1)),$2)
PLOTTER := $(call hook_or,PLOTTER,segline.plots.figures)
REPORTER := $(call hook_or,REPORTER,segline.report)
$(FIGURES): private CMD = -m $(PLOTTER) --out-dir $(RES) \
  --curves $(subst $(space),$(comma),$(strip $(CURVES))) --boxplot dice --progress $(METHOD_DIRS) $(EVAL_ARGS)
$(FIGURES): private TARGETS = $(FIGURES)
$(FIGURES) &: $(call stamp_of,$(METHOD_DIRS) $(EVAL_DIRS)) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
$(RES)/overlays.png: private CMD = -m segline.plots.overlays --cases $(DATA)/cases --out $@ $(OVERLAY_ARGS) $(METHOD_DIRS)
$(RES)/overlays.png: $(call stamp_of,$(DATA)/cases $(METHOD_DIRS)) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)

plots: $(PLOTS)

# The report tests every method against REFERENCE (paired statistics), counts an
# undefined distance as the case's field-of-view diagonal (from the case store) and
# links the plots (built first, so every link is true).
REFERENCE ?= $(firstword $(METHODS))
# Checked when make reads the makefile, like METHODS: nothing trains for a report that
# would then refuse its reference.
ifneq ($(words $(REFERENCE)),1)
$(error REFERENCE='$(strip $(REFERENCE))': one of METHODS ($(strip $(METHODS))))
endif
$(call check_name,REFERENCE,$(REFERENCE))
ifeq ($(filter $(REFERENCE),$(METHODS)),)
$(error REFERENCE=$(REFERENCE) is not among METHODS ($(strip $(METHODS))): the report tests every method against it; pick one of them)
endif
REPORTS := $(RES)/report.md $(RES)/report.csv $(RES)/report_cases.csv
$(REPORTS): private CMD = -m $(REPORTER) --dataset $(NAME) --out $(RES)/report.md \
  --csv $(RES)/report.csv --cases-csv $(RES)/report_cases.csv --cases $(DATA)/cases \
  --stat-reference $(REFERENCE) $(addprefix --plot ,$(notdir $(PLOTS))) $(REPORT_ARGS) \
  $(if $(and $(EVAL_DIRS),$(EVAL_METRICS)),--extra-metrics $(EVAL_METRICS)) $(METHOD_DIRS) $(EVAL_ARGS)
$(REPORTS): private TARGETS = $(REPORTS)
$(REPORTS) &: $(call stamp_of,$(METHOD_DIRS) $(EVAL_DIRS) $(DATA)/cases) $$(stale) | $(PLOTS) $(VENV_DEP)
	$(PY) $(CMD)

report: $(RES)/report.md

# The archive holds exactly what the report covers (and the plots of those methods):
# the items are named, nothing else under $(RES) is packed. The evaluation folders go
# in whole: their metrics.csv and grid.json, and their predictions (uint8 label maps,
# gzip-compressed, small like each training's test/preds), the files the report scored.
# Its name and pointer start with the run's NAME, <ds> or <ds>.<run> (segline.names).
PACK_POINTER := archives/$(NAME)-latest.txt
PACK_ITEMS = $(PLOTS) $(REPORTS) $(EXTRA_RESULTS) $(METHOD_DIRS) $(EVAL_DIRS)
$(PACK_POINTER): private CMD = -m segline.pack --ds $(DS)$(if $(RUN), --run $(RUN)) --results $(RES) --outdir archives \
  $(if $(filter 1 yes true,$(PACK_MODELS)),--models) $(PACK_ITEMS)
$(PACK_POINTER): $(call stamp_of,$(filter-out $(EXTRA_RESULTS),$(PACK_ITEMS))) $(EXTRA_RESULTS) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)
	@echo "plots:   $(RES)/*.png"
	@echo "report:  $(RES)/report.md"
	@echo "archive: archives/$$(cat $@)"

# The pointer is the target, the archive it names a side effect: never from the cache.
$(PACK_POINTER): private NOT_CACHED := 1

pack: $(PACK_POINTER)

# Predictions of the unlabelled cases (e.g. a challenge's test set) by each method.
# PROBS=1 adds <case>_probs.nii.gz (softmax, 4D, classes last); every folder gets
# labels.txt (ITK-SNAP) and labels.ctbl (3D Slicer). src/segline/predict.py.
PROBS ?=
PROBS_ARG = $(if $(filter 1 yes true,$(PROBS)),--probs)
# FOLDS: one folder per method, predicted by the ensemble of its fold models (the mean
# of their softmax probabilities, src/segline/predicting/infer.py).
PREDICT_METHODS := $(if $(strip $(FOLDS)),$(addprefix $(RES)/,$(METHODS)),$(METHOD_DIRS))
PREDICT_DIRS := $(patsubst $(RES)/%,$(RES)/predict/%,$(PREDICT_METHODS))
$(PREDICT_DIRS): private CMD = -m segline.predict --cases $(DATA)/cases --method $(patsubst $(RES)/predict/%,$(RES)/%,$@) \
  --out $@ --device $(DEVICE) --amp $(AMP) $(PROBS_ARG)
# $(call trainings_of,METHOD): the training folders of METHOD (a '%' in a static
# pattern rule's prerequisite would be the stem, hence this function).
trainings_of = $(filter $(RES)/$1/%,$(METHOD_DIRS))
$(PREDICT_DIRS): $(RES)/predict/%: $$(call stamp_of,$(DATA)/cases $(if $(strip $(FOLDS)),$$(call trainings_of,$$*),$(RES)/$$*)) \
  $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)

# predict INPUT=<folder> OUTPUT=<folder>: every NIfTI image of INPUT, each in its own
# geometry and preprocessed as the case store recorded, by every selected method in
# one call (checks and record once, also under -j). OUTPUT is a folder segline owns
# (src/segline/predicting/output.py): new, empty or one it wrote (it holds
# .segline-predictions, the record of its files), outside results/ and data/, apart
# from INPUT, the methods and the case store; each method writes the sub-folder named
# by its path below results/<ds>/ ('.' for '/': gdl, <run>.gdl, seeds.gdl.seed<k>),
# replaced only when it holds nothing but segline's files. All checked, resolved,
# before anything is written; else one line and exit 2. Always run (make cannot see
# INPUT change); not a recorded stage (no CMD): nothing is written beside OUTPUT.
# INPUT and OUTPUT come from the command line only (an OUTPUT in the environment is
# no request to write there).
ifneq ($(filter environment%,$(origin INPUT)),)
INPUT :=
endif
ifneq ($(filter environment%,$(origin OUTPUT)),)
OUTPUT :=
endif
INPUT ?=
OUTPUT ?=
ifneq ($(filter predict,$(MAKECMDGOALS)),)
# $(call spaced,VALUE): non-empty when VALUE has a blank (inside, leading or trailing).
spaced = $(or $(filter-out 0 1,$(words $1)),$(subst x$(strip $1)x,,x$1x))
$(foreach v,INPUT OUTPUT,$(if $(strip $($(v))),$(if $(call spaced,$($(v))),$(error $(v)='$($(v))': a path with a space, which make cannot pass on as one path; rename the folder or give a link to it without spaces))))
ifneq ($(strip $(INPUT)),)
ifeq ($(strip $(OUTPUT)),)
$(error INPUT=$(INPUT) needs OUTPUT=<folder>: a new or empty folder (one sub-folder per method))
endif
else ifneq ($(strip $(OUTPUT)),)
$(error OUTPUT=$(OUTPUT) needs INPUT=<folder of images>; without INPUT, predict writes the store's unlabelled cases to $(RES)/predict/<method>)
endif
endif
# $(call shell_word,PATH): PATH as one quoted shell word; a leading ~/ stays the home
# folder (some shells pass INPUT=~/scans on unexpanded).
shell_quote = '$(subst ','\'',$1)'
shell_word = $(if $(filter ~/%,$1),~/$(call shell_quote,$(patsubst ~/%,%,$1)),$(call shell_quote,$1))
PREDICT_INPUT_CMD = -m segline.predict --input $(call shell_word,$(INPUT)) --output $(call shell_word,$(OUTPUT)) \
  --cases $(DATA)/cases $(addprefix --method ,$(PREDICT_METHODS)) --device $(DEVICE) --amp $(AMP) $(PROBS_ARG)

ifneq ($(strip $(INPUT)),)
predict: $(METHOD_DIRS) | $(VENV_DEP)
	$(PY) $(PREDICT_INPUT_CMD)
else
predict: $(PREDICT_DIRS)
endif

# $(RES) and $(PACK_POINTER) are made of checked names only (make/names.mk): no glob,
# space, '..' or empty part can widen what this removes.
clean-results:
	rm -rf -- $(RES) $(PACK_POINTER)

clean-data:
	rm -rf $(DATA)

# The result cache (src/segline/cache.py). cache-prune applies CACHE_MAX_GB now.
# cache-verify rebuilds CACHE_VERIFY_TARGETS and what they depend on (make -B; the venv
# is left alone) with SEGLINE_CACHE_VERIFY=1: every stage is built although the cache
# holds it, and compared with its entry; a difference is one line "lineage bug: ..." and
# a non-zero exit. Default sample: the data stages and the first training.
CACHE_VERIFY_TARGETS ?= $(call dist_store,$(ABSENT)) $(DATA_EXTRA) $(firstword $(METHOD_DIRS))
cache-prune: | $(VENV_DEP)
	$(PY) -m segline.cache prune
cache-verify: | $(VENV_DEP)
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) -B $(addprefix -o ,$(VENV_DEP)) \
	  SEGLINE_CACHE_VERIFY=1 $(CACHE_VERIFY_TARGETS)

# The dependency files the CLIs wrote (segline.stage): code each target imported.
-include $(wildcard data/.*.d $(DATA)/.*.d $(RES)/.*.d $(RES)/*/.*.d $(RES)/eval/*/.*.d archives/.*.d \
  $(if $(strip $(FOLDS)),$(RES)/*/fold*/.*.d $(RES)/eval/*/fold*/.*.d))

# ---------------------------------------------------------------------------
# help: targets and knobs.
# ---------------------------------------------------------------------------
help:
	@printf '%s\n' \
	  "usage: make -f $(firstword $(MAKEFILE_LIST)) [TARGET] [KNOB=value ...]" \
	  "" \
	  "dataset $(DS) ($(if $(IS_TOY),embedded toy data,$(if $(DATASET_DIR),folder $(DATASET_DIR) ($(ADAPTER) layout),real data: $(ARCHIVES))))" \
	  "targets:" \
	  "  all (default)      everything, ending with the archive in archives/" \
	  "  $(or $(ARCHIVES),$(LINEAGE))  $(if $(DATASET_DIR),the folder's md5 manifest: recomputed by every make; rewritten when it changes,$(if $(IS_TOY),generate the toy archive(s),download when the lineage file gives a URL, else say where to get it))" \
	  "  $(DATA)/raw         $(if $(DATASET_DIR),copy the folder; each file md5-checked against $(LINEAGE),md5-verify (lineage: $(LINEAGE)) and unpack safely)" \
	  "  $(DATA)/cases       normalise, keep geometry, split train/val/test" \
	  "  $(DATA)/dist        signed distance maps (mm), 2D and 3D ($(DATA)/dist-diagonal: ABSENT=diagonal's)" \
	  "  data               everything up to the distance maps" \
	  "  $(RES)/<method>$(if $(strip $(FOLDS)),/fold<i>)$(if $(strip $(SEEDS)),/seed<k>)   train one method$(if $(strip $(SEEDS)), with one seed); methods: $(ALL_METHODS)$(if $(OPTIONAL_METHODS), (optional: $(OPTIONAL_METHODS)))" \
	  "  train              all selected methods (METHODS)" \
	  "  $(RES)/<plot>.png one plot: $(notdir $(PLOTS))" \
	  "  eval               each training's test cases predicted in their source geometry and scored against the original labels -> $(RES)/eval/<method>/$(if $(EVAL_DIRS),, (off: SOURCE_EVAL=no))" \
	  "  plots, report, pack" \
	  "  predict            each method's predictions of the unlabelled cases -> $(RES)/predict/<method>/" \
	  "  predict INPUT=dir OUTPUT=dir  predict every NIfTI image of INPUT (nnU-Net <case>_0000.nii.gz or one 3D/4D file per case) -> OUTPUT/<method>/" \
	  "                     OUTPUT: new, empty or one predict wrote (.segline-predictions), outside results/ and data/, apart from INPUT" \
	  "  clean-results, clean-data   remove this dataset's results / data" \
	  "  cache-prune        apply CACHE_MAX_GB to the result cache now (least recently used entries go)" \
	  "  cache-verify       rebuild CACHE_VERIFY_TARGETS (make -B) and compare each stage with its cache entry; a difference is a lineage bug" \
	  "knobs (current value):" \
	  "  TOY=1              embedded toy data instead of the real archive ($(TOY))$(if $(TOY_VARIANTS),; variants: TOY=$(TOY_VARIANTS))" \
	  "  METHODS=...        subset of methods ($(METHODS))" \
	  "  REFERENCE=method   the method the report tests the others against ($(REFERENCE))" \
	  "  NET=...            ENet UNet ResidualUNet Dimwit$(if $(filter UNet3D,$(NET)), UNet3D) ($(NET))" \
	  "  NET_OPTS='k=v ...'  network options, e.g. 'base=16 depth=3' ($(NET_OPTS))" \
	  "  EPC=N              epochs ($(EPC))" \
	  "  CONTEXT=k          2.5D input: k neighbouring slices each side as channels ($(CONTEXT))" \
	  "  WEIGHT_MAP=w0,s    boundary weight maps (s in mm) for weighted losses, e.g. ce:1[weighted=true]" \
	  "  BS=N               batch size ($(BS))" \
	  "  LR=x               learning rate ($(LR))" \
	  "  SEED=N             seed for everything ($(SEED))" \
	  "  SEEDS='0 1 2'      each method once per seed, in results/$(DS)/seeds/<method>/seed<k> (RUN=seeds by default) ($(SEEDS))" \
	  "  FOLDS=k            k-fold cross-validation: each method once per fold, results/$(DS)/folds/<method>/fold<i> (RUN=folds by default; SEEDS: fold<i>/seed<k>); report pools out of fold, predict ensembles the folds ($(FOLDS))" \
	  "  DEVICE=auto|cpu|cuda|cuda:N  ($(DEVICE))" \
	  "  AMP=auto|off|bf16|fp16       mixed precision ($(AMP)); fp16 trains with loss scaling" \
	  "  COMPILE=1|graphs   torch.compile the network (graphs: CUDA graphs); recorded ($(COMPILE))" \
	  "  AUG=none|light|strong  training augmentation: flips, rot90, intensity (+ zoom, elastic) ($(AUG))" \
	  "  SCHED=const|poly|cosine|halve  LR per epoch ($(SCHED)); halve: the boundary-loss reference's halving; WARMUP=N epochs of linear warm-up ($(WARMUP))" \
	  "  ABSENT=diagonal|zero  an absent class's distance map: 0 as the boundary-loss reference ($(DATA)/dist), or + field-of-view diagonal ($(DATA)/dist-diagonal), for every method without its own ($(ABSENT))" \
	  "  WD=x               decoupled weight decay, AdamW ($(WD))" \
	  "  THREADS=N          torch threads per training, whatever -j; recorded, changing it retrains ($(THREADS))" \
	  "  EVAL_METRICS=a,b   test-only metrics (e.g. precision,recall): scored by the evaluation stage, reported; changing them re-evaluates, never retrains ($(EVAL_METRICS))" \
	  "  WORKERS=auto|N     DataLoader processes per training; results identical for any N ($(WORKERS))" \
	  "  GPUS=0,1,2,3       with -jN: each training on a free GPU of the list, one per listing; not recorded ($(GPUS))" \
	  "  GPU_LOCKS=dir      GPUS token folder (/tmp/segline-gpus-<uid>, for every make of this user) ($(GPU_LOCKS))" \
	  "  CACHE=dir          result cache: a stage built once (same record, code, inputs; trainings: same platform) is restored, not rebuilt; empty: off; not recorded ($(CACHE))" \
	  "  CACHE_MAX_GB=N     size cap of the result cache, least recently used entries dropped; not recorded ($(CACHE_MAX_GB))" \
	  "  CACHE_VERIFY_TARGETS=...  what cache-verify rebuilds ($(CACHE_VERIFY_TARGETS))" \
	  "  DEBUG=1            tiny subset per loader (0: off); lands in RUN=debug (with SEEDS: debug-seeds) unless RUN is given ($(if $(IS_DEBUG),1,0))" \
	  "  RUN=name           a named run beside the others: results/$(DS)/<name>/, archives/$(DS).<name>-* ($(RUN))" \
	  "                     names (RUN, DS, methods): letters, digits, '-' and '_', starting with a letter or digit, not ending in _tmp" \
	  "  CFLAGS=-O          flags for python (-O removes assertions)" \
	  "  CC='srun ... python'  the python command ($(CC))" \
	  "  TRAINER=module     the training module, taking segline.train's options ($(TRAINER))" \
	  "  CROP=none|body|label  crop each case to the body or the labelled region (label: training and validation cases only, test cases to the body) ($(CROP)), CROP_MARGIN=mm ($(CROP_MARGIN))" \
	  "  NORM=ct|zscore|percentile  normalisation per channel instead of dataset.json's modality; one for all or one per channel, e.g. NORM=ct,zscore ($(NORM))" \
	  "  N_TEST=N N_VAL=N   split sizes: first N_TEST cases test, next N_VAL validation ($(N_TEST), $(N_VAL))" \
	  "  SPLIT=ordered|random  the order the split takes cases in: natural order of the ids, or a permutation ($(SPLIT))" \
	  "  SPLIT_SEED=N       seed of SPLIT=random ($(SPLIT_SEED))" \
	  "  SPLIT_FILE=json    nnU-Net splits_final.json: test = the fold's val, val = N_VAL of its train ($(SPLIT_FILE))" \
	  "  SPLIT_FOLD=K       the fold of SPLIT_FILE ($(SPLIT_FOLD)); every store writes its split as $(DATA)/cases/splits_final.json" \
	  "  STRATIFY=attr      test and val from every value of a per-case attribute: prefix, modality or a STRATIFY_FILE column ($(STRATIFY))" \
	  "  STRATIFY_FILE=csv  per-case attributes: header case,<attr>; one row a case ($(STRATIFY_FILE))" \
	  "  DS=name ARCHIVES=... LINEAGE=...  another archive of the same format" \
	  "  DATASET_DIR=path   a folder instead of an archive: MSD task or nnU-Net v2 raw dataset, from its dataset.json ($(DATASET_DIR))" \
	  "  NNUNET_DATASET=path  the same, nnU-Net spelling: nnUNet_raw/DatasetXXX_Name; lineage: $(DATA)/manifest.md5, computed on every make ($(NNUNET_DATASET))" \
	  "  PACK_MODELS=1      include checkpoints in the archive" \
	  "  INPUT=dir OUTPUT=dir  predict: images of INPUT, each method into OUTPUT/<method> (<run>.<method>, seeds.<method>.seed<k>) ($(or $(INPUT),-) -> $(or $(OUTPUT),-))" \
	  "  PROBS=1            predict: also <case>_probs.nii.gz, softmax probabilities, 4D (X,Y,Z,classes) ($(PROBS))" \
	  "  UNPACK_RATIO=N     refuse archives declaring more than N times their size ($(UNPACK_RATIO))" \
	  "  MAX_FILE_GB=N      DATASET_DIR: refuse a file larger than N GB, 0 = no limit; not recorded ($(MAX_FILE_GB))" \
	  "  $(DATASET_KNOBS_HELP)" \
	  "make flags: -n (dry run), -B (rebuild all), -j2 (methods in parallel)"
