# spleen.make — MSD Task09 Spleen (CT, 2 classes), or any MSD-format task.
#
#   make -f spleen.make                    real data (data/Task09_Spleen.tar)
#   make -f spleen.make TOY=1              embedded deterministic toy data
#   make -f spleen.make help               targets and knobs
#
# Another MSD task: make -f spleen.make DS=hippocampus WINDOW=none N_TEST=20 N_VAL=5 \
#     ARCHIVES=data/Task04_Hippocampus.tar LINEAGE=lineage/hippocampus.lineage
# (classes and modalities are read from the archive's dataset.json; write the
#  lineage file with `md5sum data/Task04_Hippocampus.tar > lineage/hippocampus.lineage`.
#  The split needs N_TEST + N_VAL + 1 labelled cases; count them with
#  `tar tf data/Task04_Hippocampus.tar | grep -c 'labelsTr/[^._].*\.nii\.gz$'` (260 here)
#  and for a small task lower both, e.g. Task02_Heart (20): N_TEST=4 N_VAL=2; README.)

DS_NAME := spleen
REAL_ARCHIVES := data/Task09_Spleen.tar
REAL_LINEAGE := lineage/spleen.lineage
TOY_ARCHIVES := data/spleen-toy.tar
TOY_LINEAGE := lineage/spleen-toy.lineage
TOY_GENERATOR := spleen
ADAPTER := msd
include make/toy.mk

# Dataset defaults (override on the command line).
ifneq ($(IS_TOY),)
N_TEST ?= 3
N_VAL ?= 2
EPC ?= 8
NET ?= UNet
# (base=16 is a UNet option: with NET=ENet etc. the toy uses that net's defaults)
NET_OPTS ?= $(if $(filter UNet,$(NET)),base=16)
LR ?= 1e-3
# The toy's 96x96 slices resized to 64x64: 2.25x fewer pixels per step, the same test
# Dice (0.996 vs 0.998 for gdl_boundary, 8 epochs; bench/RESULTS.md "Toy speed").
INPLANE ?= 64
else
N_TEST ?= 20
N_VAL ?= 5
EPC ?= 100
NET ?= ENet
endif
BS ?= 8
LR ?= 5e-4
# CT window level,width in HU (soft tissue; WINDOW=none for non-CT tasks);
# SPACING=z,y,x mm or INPLANE=N resample.
WINDOW ?= 40,400
SPACING ?=
INPLANE ?=
SLICE_ARGS = $(if $(filter none,$(WINDOW)),--no-window,--window=$(WINDOW)) $(if $(SPACING),--spacing=$(SPACING)) $(if $(INPLANE),--inplane=$(INPLANE))
DATASET_KNOBS_HELP = WINDOW=level,width CT window in HU ($(WINDOW)); SPACING=z,y,x mm; INPLANE=N px

# Methods: results/<ds>/<method>, each with its loss spec and options.
ALL_METHODS := ce gdl gdl_boundary gdl_boundary3d gdl_hausdorff
# Not in the defaults (METHODS=ce_weighted): cross-entropy with the iterative-FCN
# paper's boundary weights (1 + 5*exp(-d^2/2*3mm^2)).
OPTIONAL_METHODS := ce_weighted
DIST := 2d
OPTS :=

include make/common.mk

# Loss specs: name:weight[options]; a scheduled term's weight is its alpha at epoch 1;
# $(REBALANCE) (make/common.mk) is Kervadec et al.'s schedule (1-a)*GDL + a*boundary.
$(call method,ce): LOSSES := ce:1
$(call method,gdl): LOSSES := gdl:1
$(call method,ce_weighted): LOSSES := ce:1[weighted=true]
$(call method,ce_weighted): WEIGHT_MAP := 5,3
$(call method,gdl_boundary): LOSSES := gdl:1,boundary:0.01$(REBALANCE)
$(call method,gdl_boundary3d): LOSSES := gdl:1,boundary:0.01$(REBALANCE)
$(call method,gdl_boundary3d): DIST := 3d
# Hausdorff-DT (Karimi & Salcudean), two-sided: (p-t)^2 (d_t^a + d_p^a), d_p from the
# thresholded prediction at every step. alpha=1 (|d|) rather than the paper's d^2:
# distances are in mm and a class absent from a slice (d_t), or an empty prediction
# (d_p, early in training), gets the slice diagonal D, so d^2 makes the term ~D^2
# larger than GDL (on the ISLES toy both the two-sided and the one-sided d^2 forms
# collapsed to empty predictions, isles.make). hausdorff_gt is the one-sided form.
$(call method,gdl_hausdorff): LOSSES := gdl:1,hausdorff:0.01[schedule=rebalance;step=0.01;cap=0.99;alpha=1]
