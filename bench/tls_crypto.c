/* tls_crypto.c: what mbedTLS's primitives cost on this machine, for the TLS
 * rows of `make bench`: the two AEAD ciphers a link may use (MB/s sealing
 * 16 KiB records, one core) and the P-256 operations of a handshake (ms).
 * Prints "name value unit" lines. */
#include <stdio.h>
#include <time.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static unsigned char in[16384], out[16384];

static void ciphers(void)
{
	unsigned char key[32] = {0}, iv[12] = {0}, tag[16];
	mbedtls_gcm_context g;
	mbedtls_chachapoly_context c;
	int n = 4000;
	double t;

	mbedtls_gcm_init(&g);
	mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128);
	t = now();
	for (int i = 0; i < n; i++)
		mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, sizeof(in), iv, 12, NULL, 0, in, out,
		                          16, tag);
	printf("aes128gcm %.0f MB/s\n", n * (double)sizeof(in) / (now() - t) / 1e6);
	mbedtls_gcm_free(&g);
	mbedtls_chachapoly_init(&c);
	mbedtls_chachapoly_setkey(&c, key);
	t = now();
	for (int i = 0; i < n; i++)
		mbedtls_chachapoly_encrypt_and_tag(&c, sizeof(in), iv, NULL, 0, in, out, tag);
	printf("chacha20poly1305 %.0f MB/s\n", n * (double)sizeof(in) / (now() - t) / 1e6);
	mbedtls_chachapoly_free(&c);
}

static void p256(mbedtls_ctr_drbg_context *rng)
{
	mbedtls_ecp_group g;
	mbedtls_mpi k, r, s;
	mbedtls_ecp_point q, p;
	unsigned char h[32] = {1};
	int n = 100;
	double t;

	mbedtls_ecp_group_init(&g);
	mbedtls_mpi_init(&k), mbedtls_mpi_init(&r), mbedtls_mpi_init(&s);
	mbedtls_ecp_point_init(&q), mbedtls_ecp_point_init(&p);
	mbedtls_ecp_group_load(&g, MBEDTLS_ECP_DP_SECP256R1);
	t = now();
	for (int i = 0; i < n; i++)
		mbedtls_ecp_gen_keypair(&g, &k, &q, mbedtls_ctr_drbg_random, rng);
	printf("p256_keypair %.3f ms\n", (now() - t) / n * 1e3);
	t = now();
	for (int i = 0; i < n; i++)
		mbedtls_ecp_mul(&g, &p, &k, &q, mbedtls_ctr_drbg_random, rng);
	printf("p256_ecdh %.3f ms\n", (now() - t) / n * 1e3);
	t = now();
	for (int i = 0; i < n; i++)
		mbedtls_ecdsa_sign(&g, &r, &s, &k, h, sizeof(h), mbedtls_ctr_drbg_random, rng);
	printf("p256_sign %.3f ms\n", (now() - t) / n * 1e3);
	t = now();
	for (int i = 0; i < n; i++)
		mbedtls_ecdsa_verify(&g, h, sizeof(h), &q, &r, &s);
	printf("p256_verify %.3f ms\n", (now() - t) / n * 1e3);
	mbedtls_ecp_point_free(&q), mbedtls_ecp_point_free(&p);
	mbedtls_mpi_free(&k), mbedtls_mpi_free(&r), mbedtls_mpi_free(&s);
	mbedtls_ecp_group_free(&g);
}

int main(void)
{
	mbedtls_entropy_context e;
	mbedtls_ctr_drbg_context rng;

	mbedtls_entropy_init(&e);
	mbedtls_ctr_drbg_init(&rng);
	if (mbedtls_ctr_drbg_seed(&rng, mbedtls_entropy_func, &e, NULL, 0) != 0)
		return 1;
	ciphers();
	p256(&rng);
	mbedtls_ctr_drbg_free(&rng);
	mbedtls_entropy_free(&e);
	return 0;
}
