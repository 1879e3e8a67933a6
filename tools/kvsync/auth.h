/*
 * auth: the shared-token challenge-response of `kvsync serve`.
 *
 * Each side sends a fresh random nonce in its HELLO.  The client proves it
 * knows the token with crypto_auth (HMAC-SHA-512-256) keyed by a hash of
 * the token over a direction label and both nonces; the server answers
 * with its own proof under the other label, so the client knows it talks
 * to a holder of the token too.  Fresh nonces on both sides make an old
 * proof useless.
 */
#ifndef KVSYNC_SYNC_AUTH_H
#define KVSYNC_SYNC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define KS_AUTH_KEY_LEN 32u

/**
 * Read a token file (its first line, trailing whitespace dropped) and
 * derive the MAC key from it.
 * @return 0, -ENOENT/-EACCES/... (unreadable), -EINVAL (empty); @err says why
 */
int ks_token_load(const char *path, uint8_t ret_key[KS_AUTH_KEY_LEN], char *err,
		  size_t err_size);

/* The proof of the client (@server false) or of the server. */
void ks_auth_mac(const uint8_t key[KS_AUTH_KEY_LEN], bool server,
		 const uint8_t server_nonce[KS_NONCE_LEN], const uint8_t client_nonce[KS_NONCE_LEN],
		 uint8_t ret_mac[KS_MAC_LEN]);

/* Check a proof in constant time. */
bool ks_auth_check(const uint8_t key[KS_AUTH_KEY_LEN], bool server,
		   const uint8_t server_nonce[KS_NONCE_LEN],
		   const uint8_t client_nonce[KS_NONCE_LEN], const uint8_t mac[KS_MAC_LEN]);

#endif
