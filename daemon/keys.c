/* keys.c: the secret file and the certificate files (see keys.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "keys.h"

static int secrets_parse(const uint8_t *buf, size_t len, struct secrets *s, const char *path,
                         char *err, size_t errlen)
{
	size_t at = 0;

	memset(s, 0, sizeof(*s));
	if (len == 0)
		return snprintf(err, errlen, "%s: empty", path), -1;
	while (at < len) {
		const uint8_t *nl = memchr(buf + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - buf) : len, n = end - at;

		if (n > 0 && buf[end - 1] == '\r')
			n--;
		if (n == 0)
			return snprintf(err, errlen, "%s: line %zu is empty", path, s->n + 1), -1;
		if (s->n == SECRETS)
			return snprintf(err, errlen, "%s: more than %d secrets (current, next)",
			                path, SECRETS),
			       -1;
		if (n > SECRET_MAX)
			return snprintf(err, errlen, "%s: a secret of over %d bytes", path,
			                SECRET_MAX),
			       -1;
		memcpy(s->key[s->n], buf + at, n);
		s->len[s->n++] = n;
		at = end + 1;
	}
	return 0;
}

int secrets_read(const char *path, struct secrets *s, char *err, size_t errlen)
{
	uint8_t buf[SECRETS * (SECRET_MAX + 2) + 1];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), r;

	if (fd < 0)
		return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return snprintf(err, errlen, "%s: not a regular file", path), -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return snprintf(err, errlen,
		                "%s: open to group or others (mode %04o): chmod 600 it", path,
		                (unsigned)(st.st_mode & 07777)),
		       -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
	if ((size_t)n == sizeof(buf))
		return snprintf(err, errlen, "%s: longer than %zu bytes", path, sizeof(buf) - 1),
		       -1;
	r = secrets_parse(buf, (size_t)n, s, path, err, errlen);
	mbedtls_platform_zeroize(buf, sizeof(buf));
	return r;
}

void keys_strerror(int r, char *buf, size_t n)
{
	size_t len;

	mbedtls_strerror(r, buf, n);
	len = strlen(buf);
	if (len + 12 < n)
		snprintf(buf + len, n - len, " (-0x%04x)", (unsigned)-r);
}

int keys_check_tls(const char *cert, const char *key, const char *ca, const char **which, char *err,
                   size_t errlen)
{
	mbedtls_x509_crt crt, cachain;
	mbedtls_pk_context pk;
	char e[200];
	int r = 0;

	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crt_init(&cachain);
	mbedtls_pk_init(&pk);
	if (cert && (r = mbedtls_x509_crt_parse_file(&crt, cert)) != 0) {
		*which = "cert";
		keys_strerror(r, e, sizeof(e));
		snprintf(err, errlen, "%s: not a certificate: %s", cert, e);
	} else if (key && (r = mbedtls_pk_parse_keyfile(&pk, key, NULL)) != 0) {
		*which = "key";
		keys_strerror(r, e, sizeof(e));
		snprintf(err, errlen, "%s: not a private key: %s", key, e);
	} else if (cert && key && (r = mbedtls_pk_check_pair(&crt.pk, &pk)) != 0) {
		*which = "key";
		snprintf(err, errlen, "%s: not the key of %s", key, cert);
	} else if (ca && (r = mbedtls_x509_crt_parse_file(&cachain, ca)) != 0) {
		*which = "ca";
		keys_strerror(r, e, sizeof(e));
		snprintf(err, errlen, "%s: not a certificate: %s", ca, e);
	}
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&cachain);
	mbedtls_pk_free(&pk);
	return r == 0 ? 0 : -1;
}
