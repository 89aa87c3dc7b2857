/*
 * tlsio.h - OpenSSL glue: contexts, generated certificates, TLS faults
 *
 * DESCRIPTION  Builds the server's SSL_CTX from [tls] cert/key/chain, or,
 *              with none configured, from certificates generated in memory
 *              at start: a private CA and a leaf for the host name (ECDSA
 *              P-256).  It also builds one context per TLS fault (expired,
 *              not yet valid, wrong host name, self-signed, unknown CA,
 *              old protocol, refused ciphers) so a scenario rule can pick
 *              one by name.  No sockets, no libev: the session drives I/O.
 * OWNERSHIP    Contexts live until tlsio_free(); sessions take SSL objects
 *              from them with SSL_new() and free those themselves.
 * ERRORS       -1 with a message naming the file or the OpenSSL reason.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TLSIO_H
#define TLSIO_H

#include <stddef.h>

#include <openssl/ssl.h>

struct conf;

/* Which context a handshake uses: the good one or a fault. */
enum tls_variant {
	TV_GOOD,
	TV_EXPIRED,		/* notAfter in the past */
	TV_NOT_YET_VALID,	/* notBefore in the future */
	TV_WRONG_HOST,		/* names wrong.invalid, not our host name */
	TV_SELF_SIGNED,		/* leaf signs itself */
	TV_UNKNOWN_CA,		/* signed by a CA nobody was given */
	TV_TLS1,		/* only TLS 1.0, security level 0 */
	TV_TLS11,		/* only TLS 1.1, security level 0 */
	TV_WEAK_CIPHERS,	/* TLS 1.2 with ciphers modern clients refuse */
	TV__COUNT
};

/* Build every context from cf.  0, or -1 with err. */
int	 tlsio_init(const struct conf *cf, char *err, size_t errlen);
void	 tlsio_free(void);
SSL_CTX	*tlsio_ctx(enum tls_variant v);
/* "expired", "wrong_host" ... -> variant; -1 if unknown. */
int	 tlsio_variant(const char *name);
const char *tlsio_variant_name(enum tls_variant v);
/*
 * Write the PEM of the CA that signed the generated certificate, so a
 * client can verify it (--tls-ca-out).  0 or -1 with errno.
 */
int	 tlsio_write_ca(const char *path);
/* The first queued OpenSSL error as text (and clear the queue). */
const char *tlsio_error(char *buf, size_t len);
/* Name of a version constant ("TLSv1.3") or of a config value. */
int	 tlsio_parse_version(const char *s, int *out);

#endif
