/* Reading config.json's quantization_config (engine/model internal: model_config.c). */
#ifndef FOLIO_QUANT_CONFIG_READ_H
#define FOLIO_QUANT_CONFIG_READ_H

#include "json_util.h"
#include "model_config.h"

/* Reads root's "quantization_config" (absent or null: QUANT_NONE) into cfg->quant, after the
 * sizes are read (group sizes must divide every Linear's input size). Unsupported methods,
 * bit widths, formats or group sizes: -1 with "ORIGIN: field 'quantization_config.KEY': VALUE
 * is not supported (WHAT IS)". */
int quant_config_read(const json_t *root, const json_src *src, model_config *cfg);

#endif
