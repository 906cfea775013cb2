# vertebrae.make — vertebra instance segmentation on spine CT (VerSe layout), the
# setting of the iterative FCN (Lessmann et al., "Iterative fully convolutional neural
# networks for automatic vertebra segmentation and identification", MedIA 2019):
# isotropic CT cropped to the labelled vertebrae, one label per vertebra.
#
#   make -f vertebrae.make              real data: the VerSe'19 zips in data/ (put there
#                                       by you; see lineage/vertebrae.lineage and the
#                                       README's "Vertebrae" section)
#   make -f vertebrae.make TOY=1        embedded deterministic toy data (a synthetic spine)
#   make -f vertebrae.make TOY=1 data   data/vertebrae-toy/{raw,cases,dist}
#   make -f vertebrae.make help         targets and knobs
#
# Another VerSe-layout archive (e.g. VerSe'20): make -f vertebrae.make DS=verse20 \
#     ARCHIVES='data/dataset-verse20training.zip data/dataset-verse20validation.zip'
# Its md5s are recorded on first use in lineage/vertebrae.local.lineage (commit that file
# to pin them; src/segline/lineage/record.py).
#
# Classes (segline/datasets/verse.py): background and every VerSe vertebra value present
# in the masks, in label order; dataset.json source_info.label_values maps class index
# -> VerSe value (1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 sacrum, 27 coccyx, 28 T13).

DS_NAME := vertebrae
# VerSe'19 in its restructured ("complete") release, one zip per part, each unpacking to
# its own top folder (dataset-verse19training/ ...); CTs without a mask are inferred only.
REAL_ARCHIVES := data/dataset-verse19training.zip data/dataset-verse19validation.zip \
  data/dataset-verse19test.zip
REAL_LINEAGE := lineage/vertebrae.lineage
TOY_ARCHIVES := data/vertebrae-toy.tar
TOY_LINEAGE := lineage/vertebrae-toy.lineage
TOY_GENERATOR := vertebrae
ADAPTER := verse
include make/toy.mk

# Dataset defaults (override on the command line).
ifneq ($(IS_TOY),)
# 16 labelled toy cases (6-10 vertebrae each) and 2 unlabelled ones: 5 test, 2 val, 9 train.
N_TEST ?= 5
N_VAL ?= 2
# The toy's source voxels are 1.5 x 1.5 x 2.5 mm (x, y, z), so resampling acts on every
# axis. At 2 mm a cropped case is 67-93 x 35-42 x 35-41 voxels (z, y, x), small enough
# for 3D training on a 2-core CPU, with 2.5-3.5 voxels of disc between vertebrae; at
# 1 mm it would be eight times larger.
SPACING ?= 2,2,2
else
N_TEST ?= 40
N_VAL ?= 20
# Isotropic 1 mm, the iterative FCN's resolution.
SPACING ?= 1,1,1
endif
# Bone window (level 400, width 1800 HU: [-500, 1300] HU -> [0, 1]): cortical and
# cancellous bone, discs and soft tissue stay apart; the soft-tissue default (40,400)
# would saturate every bone voxel at 1.
WINDOW ?= 400,1800
# The spine's box: the labelled vertebrae plus 8 mm (4 voxels of the toy's 2 mm), for
# training and validation cases only; a test case (in any fold with FOLDS) and an
# unlabelled case are cropped to the body (CT above -500 HU, from the image alone), so
# no test case is cropped by its own ground truth.
CROP ?= label
CROP_MARGIN ?= 8
SLICE_ARGS = $(if $(filter none,$(WINDOW)),--no-window,--window=$(WINDOW)) $(if $(SPACING),--spacing=$(SPACING))
# One class per vertebra (up to 29 classes on VerSe) would make as many whole-volume
# maps per case: the distance store holds K=2 3D maps instead, background and all
# vertebrae merged (docs/CONTRACTS.md); boundary weights (WEIGHT_MAP) use channel 1.
DIST_ARGS := --merge-foreground
DIST := 3d
# Overlays of instances: sagittal slices, one colour per vertebra (segline.plots.overlays).
OVERLAY_ARGS := --instances
DATASET_KNOBS_HELP = WINDOW=level,width CT window in HU ($(WINDOW)); SPACING=z,y,x mm ($(SPACING)); with FOLDS, predict refuses to ensemble the folds' instance maps: segline-predict --method <one fold's folder>

# Training (src/segline/experiments/vertebrae/train.py: the shared recipe with the
# vertebra trainers, IterativeTrainer or SemanticTrainer by --method, which take
# segline.train's options plus --method; args.json records the class). Defaults as
# tuned on the toy (bench/RESULTS.md "Vertebrae").
TRAINER := segline.experiments.vertebrae.train
ifneq ($(IS_TOY),)
EPC ?= 12
else
EPC ?= 100
endif
BS ?= 2
LR ?= 2e-3
SCHED ?= cosine

# Methods: the iterative FCN (one vertebra at a time, with an instance memory) and a
# semantic 3D U-Net baseline (one class per vertebra); optional (METHODS='iterative
# iterative_ref'): the iterative FCN with the published code's mask loss and weights. The report compares them on
# matched instances (src/segline/metrics/instances.py): per-vertebra Dice and ASSD,
# identification rate (matched Dice >= 0.5), false positives and misses per case;
# differences are iterative - semantic.
ALL_METHODS := iterative semantic
OPTIONAL_METHODS := iterative_ref
REFERENCE ?= $(if $(filter semantic,$(METHODS)),semantic,$(firstword $(METHODS)))
REPORT_ARGS := --metrics dice,assd,id_rate,false_positives,misses
# No instance HD95; the identification rate per epoch instead.
NO_CURVES := val_hd95
EXTRA_CURVES := val_id_rate
# Test numbers in each case's source geometry ($(RES)/eval/<method>, make/common.mk):
# the instance maps written back to the CT's grid are scored by the same matched-instance
# metrics against the original VerSe masks, their values mapped to the store's classes
# (segline.experiments.vertebrae.evaluate). FOLDS=k trains each method per fold and the
# report pools them out of fold; `predict` refuses a folds run's method folder (instance
# maps have no probabilities to average): predict with one fold's folder instead.

include make/common.mk

# The iterative FCN (Lessmann et al.): 2 input channels (image, instance memory),
# constant channel count, a completeness output (label 1 when >= 98 % of the
# vertebra's voxels lie inside the patch: --complete-frac 0.98, the published rule);
# 80 patches per epoch; the original paper's augmentation (elastic, blur, noise,
# random z crop: AUG=strong); inference in windows of the training patch, centred on
# what it finds. Real data: the published code's 128^3 patches at 1 mm and 64
# channels (a GPU's work); the toy (2 mm): 16 x 40 x 40 patches, 8 channels.
# `iterative`'s loss is segline's: boundary-weighted BCE (wbce), weights
# 1 + 5 exp(-d^2 / 2 (3 mm)^2) from the merged distance map, plus BCE on completeness.
# `iterative_ref` uses the published code's: 0.1 FP + FN, soft voxel sums per patch
# (fpfn, reduce=sum), weights 1 + 8 exp(-d^2 / 6^2) = 1 + 8 exp(-d^2 / 2 (4.2426 mm)^2)
# (WEIGHT_MAP=8,4.2426), plus the same BCE on completeness.
ifneq ($(IS_TOY),)
iterative_patch := 16,40,40
iterative_net := channels=8 depth=3
else
iterative_patch := 128,128,128
iterative_net := channels=64 depth=3
endif
iterative_targets := $(foreach m,iterative iterative_ref,$(call method,$(m)))
$(iterative_targets): NET := IterativeFCN
$(iterative_targets): NET_OPTS := $(iterative_net)
$(call method,iterative): LOSSES := wbce:1,complete:1
$(call method,iterative): WEIGHT_MAP := 5,3
$(call method,iterative_ref): LOSSES := fpfn:1[fp_weight=0.1;reduce=sum],complete:1
$(call method,iterative_ref): WEIGHT_MAP := 8,4.2426
# and the published code's optimiser settings: batch 1, Adam at 1e-3, constant.
$(call method,iterative_ref): BS := 1
$(call method,iterative_ref): LR := 1e-3
$(call method,iterative_ref): SCHED := const
$(iterative_targets): AUG := strong
$(iterative_targets): OPTS := --method iterative --patch $(iterative_patch) \
  --samples-per-epoch 80 --complete-frac 0.98
# The semantic baseline: a multi-class 3D U-Net, one output class per vertebra, on
# patches holding the whole toy spine (96 slices, padded: the class of a vertebra
# depends on where it lies along the spine); soft Dice alone (cross-entropy on 0.7 %
# of voxels per class led to background only), each class's largest component kept
# (segline/experiments/vertebrae/postprocess.py). Slower than the iterative method on
# the toy (about 2.3 min of CPU): bench/RESULTS.md "Vertebrae".
$(call method,semantic): NET := UNet3D
$(call method,semantic): NET_OPTS := base=4 depth=3
$(call method,semantic): LOSSES := dice:1
$(call method,semantic): AUG := none
$(call method,semantic): EPC := 15
$(call method,semantic): LR := 1e-2
$(call method,semantic): BS := 1
$(call method,semantic): OPTS := --method semantic --patch 96,40,40 --samples-per-epoch 36
