/* fuzz_config.c: any text as partisand.json. The loader must accept it or
 * name the problem, never crash, never leak (ASan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[512] = "";
	char *text = malloc(size + 1);

	memcpy(text, data, size);
	text[size] = '\0';
	config_defaults(&c);
	if (config_load_string(&c, text, err, sizeof(err)) == 0)
		config_finish(&c, err, sizeof(err));
	config_free(&c);
	free(text);
	return 0;
}

/* The shipped example and a few variants. */
size_t fuzz_seeds(struct fuzz_buf *v, size_t max)
{
	static const char *const texts[] = {
	    "{\"name\": \"a@127.0.0.1\", \"listen_addrs\": [{\"ip\": \"127.0.0.1\", \"port\": 0}],"
	    " \"channels\": {\"default\": {\"parallelism\": 1}, \"bulk\": {\"parallelism\": 4},"
	    " \"telemetry\": {\"monotonic\": true}}, \"join\": [\"b@127.0.0.1:10201\"]}",
	    "{\"peer_service_manager\": \"hyparview\", \"hyparview\": {\"active_max_size\": 5,"
	    " \"passive_max_size\": 30, \"arwl\": 6, \"prwl\": 3}}",
	    "{\"ipc\": {\"socket\": \"/tmp/x.sock\", \"mode\": \"0660\", \"allow_uids\": [0],"
	    " \"allow_gids\": []}, \"log\": {\"level\": \"debug\"}, \"cluster\": {\"name\": "
	    "\"c\"}}",
	};
	size_t n = 0;
	const char *src = getenv("PARTISAN_SRCDIR");
	char path[4096];
	FILE *f;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]) && n < max; i++) {
		v[n].len = strlen(texts[i]);
		v[n].data = malloc(v[n].len);
		memcpy(v[n].data, texts[i], v[n].len);
		n++;
	}
	snprintf(path, sizeof(path), "%s/conf/partisand.json", src ? src : ".");
	if (n < max && (f = fopen(path, "rb")) != NULL) {
		v[n].data = malloc(1 << 16);
		v[n].len = fread(v[n].data, 1, 1 << 16, f);
		fclose(f);
		n++;
	}
	return n;
}
