/* folio render: prints a model's chat template rendered over a conversation, exactly as
 * transformers' apply_chat_template(tokenize=False) would, adding nothing (no newline). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat_template.h"
#include "cli.h"
#include "commands.h"
#include "error.h"

static const char RENDER_HELP[] =
    "usage: folio render --model DIR --messages FILE.json [--tools FILE.json]\n"
    "                    [--add-generation-prompt]\n\n"
    "Prints the chat template of DIR (chat_template.jinja or tokenizer_config.json) rendered\n"
    "over a conversation, exactly, with no newline added.\n\n"
    "  --model DIR              model directory holding tokenizer_config.json\n"
    "  --messages FILE.json     a JSON array of messages ({\"role\": ..., \"content\": ...})\n"
    "  --tools FILE.json        a JSON array of tool definitions\n"
    "  --add-generation-prompt  end with the start of an assistant turn\n";

enum { OPT_MESSAGES = 2000, OPT_TOOLS, OPT_GEN_PROMPT };

/* Loads a JSON file that must hold an array; names the option and file when it fails. */
static json_t *load_array(const char *option, const char *path) {
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!j) {
        if (jerr.line > 0) folio_fail("%s %s: line %d: %s", option, path, jerr.line, jerr.text);
        else folio_fail("%s %s: %s", option, path, jerr.text);
        return NULL;
    }
    if (!json_is_array(j)) {
        folio_fail("%s %s: expected a JSON array", option, path);
        json_decref(j);
        return NULL;
    }
    return j;
}

int cmd_render(int argc, char **argv, comm_ctx *comm) {
    static const struct option opts[] = {
        {"model", required_argument, 0, OPT_MODEL},
        {"messages", required_argument, 0, OPT_MESSAGES},
        {"tools", required_argument, 0, OPT_TOOLS},
        {"add-generation-prompt", no_argument, 0, OPT_GEN_PROMPT},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0}};
    const char *model_dir = NULL, *messages_path = NULL, *tools_path = NULL;
    bool gen = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL: model_dir = optarg; break;
        case OPT_MESSAGES: messages_path = optarg; break;
        case OPT_TOOLS: tools_path = optarg; break;
        case OPT_GEN_PROMPT: gen = true; break;
        case OPT_HELP: fputs(RENDER_HELP, stdout); return 0;
        default: return cli_unknown_option("render", argv, opts);
        }
    }
    if (optind < argc) return folio_fail("render: unexpected argument '%s'", argv[optind]);
    if (!model_dir) return folio_fail("render: --model DIR is required");
    if (!messages_path) return folio_fail("render: --messages FILE.json is required");
    if (comm->rank != 0) return 0;

    json_t *messages = NULL, *tools = NULL;
    chat_template *ct = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = -1;
    if (!(messages = load_array("--messages", messages_path))) goto done;
    if (tools_path && !(tools = load_array("--tools", tools_path))) goto done;
    if (!(ct = chat_template_load(model_dir))) goto done;
    if (chat_template_render(ct, messages, tools, gen, &text, &len) != 0) goto done;
    if (fwrite(text, 1, len, stdout) != len) {
        folio_fail("render: cannot write the output");
        goto done;
    }
    rc = 0;
done:
    free(text);
    chat_template_free(ct);
    json_decref(tools);
    json_decref(messages);
    return rc;
}
