# vessels.make — 3D vessel segmentation supervised by 2D maximum-intensity-projection
# (MIP) labels (Guo et al., TMI 2024), with 3D U-Nets on patches (MSD Task08
# HepaticVessel, or the embedded toy vessel trees with TOY=1).
#
#   make -f vessels.make                 real data (data/Task08_HepaticVessel.tar)
#   make -f vessels.make TOY=1           embedded deterministic toy data
#   make -f vessels.make help            targets and knobs
#
# Extra stages on top of the shared ones (make/common.mk):
#   data/<ds>/mip     per case: MIP image, argmax depth map, 2D label = projection of
#                     the 3D label (it stands for the 2D annotation a person would draw)
#   data/<ds>/pseudo  3D pseudo-labels from the 2D label and the image only
#                     (0 background, 1 vessel, 255 unlabelled = ignored by the losses),
#                     their distance maps, and quality.md/csv: precision/recall against
#                     the true 3D labels
# The true 3D labels are used only by the `full` method and by evaluation.
# Every vessels-only piece lives in src/segline/experiments/vessels: the two stages,
# the trainer (TRAINER: --label-source, --pseudo, --mip), the MIP loss and the
# mip_dice metric, which the report and figures modules (REPORTER, PLOTTER) register
# before running the core's. No other dataset's stage imports them.

DS_NAME := vessels
REAL_ARCHIVES := data/Task08_HepaticVessel.tar
REAL_LINEAGE := lineage/vessels.lineage
TOY_ARCHIVES := data/vessels-toy.tar
TOY_LINEAGE := lineage/vessels-toy.lineage
TOY_GENERATOR := vessels
ADAPTER := msd
include make/toy.mk

ifneq ($(IS_TOY),)
N_TEST ?= 3
N_VAL ?= 2
EPC ?= 6
SAMPLES ?= 32
# UNet3D with 8 channels in its first level (default 16): 2.4x faster steps in fp32
# on a 2-core CPU, test Dice 0.960 (full; bench/RESULTS.md "Toy speed"; 0.894 since the
# toy has its bone bar).
NET_OPTS ?= $(if $(filter UNet3D,$(NET)),base=8)
else
N_TEST ?= 60
N_VAL ?= 20
EPC ?= 200
SAMPLES ?= 500
endif
NET ?= UNet3D
BS ?= 2
LR ?= 1e-3
# 3D patch (z,y,x voxels) and sliding-window overlap.
PATCH ?= 32,48,48
OVERLAP ?= 0.5
# Contrast-enhanced vessels: a window around vessel intensities (level,width HU).
WINDOW ?= 120,280
# Tumour (label 2) becomes background for the vessel task; TUMOUR=keep keeps it.
TUMOUR ?= background
# Real scans are mostly air around the body: crop to it (toy volumes have no air, so
# the crop keeps them whole, but they go through the same step).
CROP ?= body
SPACING ?=
SLICE_ARGS = $(if $(filter none,$(WINDOW)),--no-window,--window=$(WINDOW)) \
  $(if $(filter background,$(TUMOUR)),--label-map 2:0) $(if $(SPACING),--spacing=$(SPACING))
# MIP axis of the stored (z, y, x) volume and pseudo-label thresholds (relative to the
# mean intensity of the seeds: the voxels at the argmax depth of labelled MIP pixels).
MIP_AXIS ?= 0
# Occluders (bone) removed before the projection: voxels above OCCLUDER_HU, read in HU
# from the source image (the windowed case store clips bone and bright vessels alike
# to 1.0), grown by OCCLUDER_MARGIN voxels for bone's partial-volume rim. The 2D
# label stays the projection of the 3D label: the annotation of the visible MIP.
# OCCLUDER_HU=none removes nothing.
OCCLUDER_HU ?= 400
OCCLUDER_MARGIN ?= 1
# Pseudo-label rules: segline (candidates on labelled rays, FG_REL, BG_FACTOR,
# MIN_SIZE) or reference (the published code's fixed rules; those three then unused).
PSEUDO ?= segline
FG_REL ?= 0.7
BG_FACTOR ?= 0.5
MIN_SIZE ?= 10
DATASET_KNOBS_HELP = PATCH=z,y,x ($(PATCH)) OVERLAP=$(OVERLAP) SAMPLES=patches/epoch ($(SAMPLES)) \
  WINDOW=$(WINDOW) SPACING=z,y,x mm TUMOUR=background|keep MIP_AXIS=$(MIP_AXIS) FG_REL=$(FG_REL) BG_FACTOR=$(BG_FACTOR) \
  MIN_SIZE=$(MIN_SIZE) OCCLUDER_HU=HU|none ($(OCCLUDER_HU)) OCCLUDER_MARGIN=voxels ($(OCCLUDER_MARGIN)) \
  PSEUDO=segline|reference ($(PSEUDO))

ALL_METHODS := full pseudo mip mip_boundary
# Optional (METHODS='full pseudo mip mip_boundary mip_fused'): the published fused
# network and loss; on the toy at 6 epochs it over-segments (test Dice 0.57 against
# mip's 0.80, both before the toy's bone bar; bench/RESULTS.md), so the demo keeps the
# four above.
OPTIONAL_METHODS := mip_fused
DIST := 3d
DATA_EXTRA = $(DATA)/mip $(DATA)/pseudo
# (the stages' content stamps, make/common.mk: a rebuild to the same bytes retrains nothing)
TRAIN_DEPS = $(call stamp_of,$(DATA)/mip $(DATA)/pseudo)
EXTRA_CURVES := val_cldice val_mip_dice
EXTRA_RESULTS = $(RES)/pseudo_quality.md $(RES)/pseudo_quality.csv
REPORT_ARGS = --metrics dice,cldice,hd95,assd,mip_dice $(if $(filter full,$(METHODS)),--reference full)
TRAINER := segline.experiments.vessels.train
REPORTER := segline.experiments.vessels.report
PLOTTER := segline.experiments.vessels.figures
# The evaluation stage (make/common.mk) scores mip_dice too, as the vessel trainer
# says (args.json trainer): the projections along the MIP store's axis (MIP_AXIS) of
# the source-geometry prediction and of the original 3D label.

include make/common.mk

# Every method: 3D patches, sliding-window evaluation, all vessel metrics.
WEAK = --label-source pseudo --pseudo $(DATA)/pseudo
OPTS = --patch $(PATCH) --overlap $(OVERLAP) --samples-per-epoch $(SAMPLES) --mip $(DATA)/mip \
  --metrics dice,hd95,assd,cldice,mip_dice
$(call method,full): LOSSES := ce:1,dice:1
$(call method,pseudo): LOSSES := ce:1,dice:1
$(call method,pseudo): OPTS += $(WEAK)
$(call method,mip): LOSSES := ce:1,dice:1,mip:1[axis=$(MIP_AXIS)]
$(call method,mip): OPTS += $(WEAK)
$(call method,mip_boundary): LOSSES := ce:1,dice:1,mip:1[axis=$(MIP_AXIS)],boundary:0.01$(REBALANCE)
$(call method,mip_boundary): OPTS += $(WEAK)
# The published method: a 3D residual U-Net fused at the MIP index with a 2D one on
# the patch's MIP (segline/experiments/vessels/fused.py), trained with three
# count-normalised cross-entropies and two 2D Dice terms (the loss mip_fused); its 3D
# head predicts. Its network is part of the method: the command line's NET and
# NET_OPTS do not apply to it (5 levels of 6-128 channels, as published; PATCH must
# be a multiple of 16).
$(call method,mip_fused): override NET := MipFused
$(call method,mip_fused): override NET_OPTS := axis=$(MIP_AXIS)
$(call method,mip_fused): LOSSES := mip_fused:1[axis=$(MIP_AXIS)]
$(call method,mip_fused): OPTS += $(WEAK)

# --- the MIP and pseudo-label stages ------------------------------------------------
OCCLUDING = $(filter-out none,$(OCCLUDER_HU))
$(DATA)/mip: private CMD = preprocess/mip.py --cases $(DATA)/cases --out $(DATA)/mip --axis $(MIP_AXIS) \
  $(if $(OCCLUDING),--raw $(DATA)/raw --occluder-hu $(OCCLUDER_HU) --occluder-margin $(OCCLUDER_MARGIN))
$(DATA)/mip: $(call stamp_of,$(DATA)/cases $(if $(OCCLUDING),$(DATA)/raw)) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)

$(DATA)/pseudo: private CMD = preprocess/pseudo.py --cases $(DATA)/cases --mip $(DATA)/mip \
  --out $(DATA)/pseudo --rules $(PSEUDO) \
  $(if $(filter segline,$(PSEUDO)),--fg-rel $(FG_REL) --bg-factor $(BG_FACTOR) --min-size $(MIN_SIZE))
$(DATA)/pseudo: $(call stamp_of,$(DATA)/cases $(DATA)/mip) $$(stale) | $(VENV_DEP)
	$(PY) $(CMD)

# The pseudo-label quality table goes into the results (and the archive); temporary
# names unique to this make, renamed when complete.
$(RES)/pseudo_quality.md $(RES)/pseudo_quality.csv &: $(call stamp_of,$(DATA)/pseudo)
	mkdir -p $(RES)
	for ext in md csv; do \
	  cp $(DATA)/pseudo/quality.$$ext $(RES)/pseudo_quality.$$ext.$$$$.tmp; \
	  mv $(RES)/pseudo_quality.$$ext.$$$$.tmp $(RES)/pseudo_quality.$$ext; \
	done
