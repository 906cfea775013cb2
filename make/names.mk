# segline — the naming rule for every name that becomes a folder or file name: the
# dataset DS (data/<ds>/, results/<ds>/), the run RUN (results/<ds>/<run>/) and each
# method (results/<ds>[/<run>]/<method>/). Included by make/common.mk, which checks DS,
# RUN, REFERENCE and every method of the dataset makefile with it when make reads the
# makefiles; src/segline/names.py is its Python twin for the command-line tools (same
# rule, same reasons; tests/test_names.py checks that the two agree on a table).
#
# A name is one word of ASCII letters, digits, '-' and '_', starting with a letter or
# digit, not ending in _tmp. So a name
#   - holds no '/', space, glob or shell character: it is safe unquoted in every
#     recipe (clean-results removes $(RES) with rm -rf) and as a make target;
#   - holds no '.': it never equals a file beside the runs (report.md, val_dice.png,
#     pseudo_quality.csv, ...), and '.' (NAME_SEP) joins DS and RUN in the archive
#     names without ambiguity: DS=pg RUN=x is pg.x, DS=pg-x is pg-x;
#   - never ends in _tmp, the suffix of a folder being written (segline.atomic).
# Pure make functions: nothing runs at parse time (make -n stays side-effect free).

# The separator of DS and RUN in the run's archive names (archives/<ds>.<run>-*).
NAME_SEP := .
NAME_RULE := names (DS, RUN, methods) are letters, digits, '-' and '_', starting with a letter or digit, not ending in _tmp
name_chars := a b c d e f g h i j k l m n o p q r s t u v w x y z \
  A B C D E F G H I J K L M N O P Q R S T U V W X Y Z 0 1 2 3 4 5 6 7 8 9 _ -
name_digits := 0 1 2 3 4 5 6 7 8 9
name_empty := it is empty
name_space := it has a space
name_chars_bad := it has a character other than letters, digits, '-' and '_'
name_start_bad := it starts with '-' or '_'
name_tmp := it ends in _tmp (a folder being written)

# $(call name_strip,TEXT,CHARS): TEXT without any of the (one-character) words CHARS.
name_strip = $(if $2,$(call name_strip,$(subst $(firstword $2),,$1),$(wordlist 2,$(words $2),$2)),$1)
# $(call name_problem,VALUE): empty when VALUE is a name, else what is wrong with it.
# (The space test compares VALUE with its stripped self: $(words) and $(if) ignore
# leading and trailing blanks, a folder name would not.)
name_problem = $(if $(strip $1),$(if $(or $(filter-out 1,$(words $1)),$(subst x$(strip $1)x,,x$1x)),$(name_space),$(if $(call name_strip,$1,$(name_chars)),$(name_chars_bad),$(if $(filter -% _%,$1),$(name_start_bad),$(if $(filter %_tmp,$1),$(name_tmp))))),$(name_empty))
# $(call name_seed_like,NAME): non-empty when NAME is seed<digits>, a seed folder's
# name (NAME must be a name: no '%' in it).
name_seed_like = $(if $(filter seed%,$1),$(if $(patsubst seed%,%,$1),$(if $(call name_strip,$(patsubst seed%,%,$1),$(name_digits)),,$1)))
# $(call check_name,KNOB,VALUE[,HINT]): stop with one line naming the knob, the value
# and the rule when VALUE is not a name.
check_name = $(if $(call name_problem,$2),$(error $1='$2': not a valid name ($(call name_problem,$2)); $(NAME_RULE)$3))
# $(call name_fold_like,NAME): non-empty when NAME is fold<digits>, a fold's folder name.
name_fold_like = $(if $(filter fold%,$1),$(if $(patsubst fold%,%,$1),$(if $(call name_strip,$(patsubst fold%,%,$1),$(name_digits)),,$1)))
