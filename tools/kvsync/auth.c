/*
 * auth: token loading and the challenge-response proofs of kvsync
 * (see auth.h).  Keys and tokens are wiped from memory once used.
 */
#include "auth.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_MAX 4096

int ks_token_load(const char *path, uint8_t ret_key[KS_AUTH_KEY_LEN], char *err,
		  size_t err_size)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		snprintf(err, err_size, "cannot read token file %s: %s", path, strerror(e));
		return -e;
	}
	char buf[TOKEN_MAX + 2];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = 0;
	n = strlen(buf);
	while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	if (n == 0 || n > TOKEN_MAX) {
		sodium_memzero(buf, sizeof(buf));
		snprintf(err, err_size, "token file %s %s", path,
			 n ? "holds a token over 4096 bytes" : "is empty");
		return -EINVAL;
	}
	crypto_generichash(ret_key, KS_AUTH_KEY_LEN, (const unsigned char *)buf, n,
			   (const unsigned char *)"kvsync-token", 12);
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

static void auth_input(bool server, const uint8_t *sn, const uint8_t *cn, uint8_t *out)
{
	/* Labels of equal length keep the layout fixed. */
	memcpy(out, server ? "kvsync-server-1\0" : "kvsync-client-1\0", 16);
	memcpy(out + 16, sn, KS_NONCE_LEN);
	memcpy(out + 16 + KS_NONCE_LEN, cn, KS_NONCE_LEN);
}

void ks_auth_mac(const uint8_t key[KS_AUTH_KEY_LEN], bool server,
		 const uint8_t server_nonce[KS_NONCE_LEN], const uint8_t client_nonce[KS_NONCE_LEN],
		 uint8_t ret_mac[KS_MAC_LEN])
{
	uint8_t in[16 + 2 * KS_NONCE_LEN];
	auth_input(server, server_nonce, client_nonce, in);
	crypto_auth(ret_mac, in, sizeof(in), key);
}

bool ks_auth_check(const uint8_t key[KS_AUTH_KEY_LEN], bool server,
		   const uint8_t server_nonce[KS_NONCE_LEN],
		   const uint8_t client_nonce[KS_NONCE_LEN], const uint8_t mac[KS_MAC_LEN])
{
	uint8_t in[16 + 2 * KS_NONCE_LEN];
	auth_input(server, server_nonce, client_nonce, in);
	return crypto_auth_verify(mac, in, sizeof(in), key) == 0;
}
