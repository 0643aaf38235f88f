/* Configuration file and model lookup.
 *
 * File: $XDG_CONFIG_HOME/cascade-read/config (default ~/.config/cascade-read/config), optional.
 * Lines "key = value"; '#' starts a comment (at the start of a line or after a blank); blank
 * lines are ignored; a value may be written in double quotes. Keys: model, device, threads,
 * policy, cache, cascades, sinks, stride, beta, colors (the interface's color theme), color
 * (auto, always or never; like NO_COLOR in the environment, "never" turns colors off).
 * Values are checked like the options of the same name; a bad line is an error naming
 * FILE:LINE. Options given on the command line win over the file.
 *
 * Model lookup, first found: --model, $CASCADE_MODEL, the file's `model` (a bare file name is
 * looked up in the models folder first; "~/" is expanded), the first *.gguf (by name) in the
 * models folder $XDG_DATA_HOME/cascade-read/models (default ~/.local/share/cascade-read/models,
 * where --pull stores its downloads). */
#ifndef CR_CONFIG_H
#define CR_CONFIG_H
#include <stddef.h>
#include "cli.h"

/* Path of the configuration file / of the models folder (not created). 0, or -1 when neither
 * the XDG variable nor $HOME is set. */
int config_file_path(char *buf, size_t n);
int config_models_dir(char *buf, size_t n);

/* Reads the file at path (missing: nothing to do) into o for what o leaves unset (model NULL,
 * device NULL, threads 0, policy/cache/cascades/sinks/stride/beta < 0, colors NULL, color < 0).
 * Strings are kept for the life of the process. 0, or -1 with err = "FILE:LINE: problem". */
int config_load(const char *path, cr_opts *o, char *err, size_t errlen);

/* cli_parse's last step: the configuration file, NO_COLOR, then the model lookup when the mode
 * needs a model. 0, or an exit code after printing one line (bad file: CR_EXIT_USAGE; no
 * model: CR_EXIT_MODEL, naming every place looked at and --pull). */
int config_apply(cr_opts *o);

/* Where the model comes from after config_apply: "--model", "$CASCADE_MODEL", "config" or
 * "models folder" (NULL: no lookup was needed). */
const char *config_model_source(void);
#endif
