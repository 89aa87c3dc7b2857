/*
 * tlsio.c - OpenSSL glue: contexts, generated certificates, TLS faults
 *
 * DESCRIPTION  See tlsio.h.  Generated certificates are ECDSA P-256,
 *              SHA-256 signed, with subjectAltName DNS:<hostname>,
 *              DNS:localhost and IP:127.0.0.1 so loopback tests can verify
 *              them against the CA written by --tls-ca-out.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "scenario.h"
#include "tlsio.h"
#include "util.h"

#define DAY (24L * 3600)

static SSL_CTX	*ctxs[TV__COUNT];
static X509	*ca_cert;
static EVP_PKEY	*ca_key;

int
tlsio_variant(const char *name)
{
	return scn_tls_index(name);
}

const char *
tlsio_variant_name(enum tls_variant v)
{
	return v < TV__COUNT ? scn_tls_names[v] : "?";
}

const char *
tlsio_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "%s", errno ? strerror(errno) :
		    "unexpected end of connection");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

int
tlsio_parse_version(const char *s, int *out)
{
	static const struct { const char *n; int v; } t[] = {
		{ "", 0 }, { "TLSv1", TLS1_VERSION }, { "TLSv1.0", TLS1_VERSION },
		{ "TLSv1.1", TLS1_1_VERSION }, { "TLSv1.2", TLS1_2_VERSION },
		{ "TLSv1.3", TLS1_3_VERSION },
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++)
		if (strcasecmp(s, t[i].n) == 0) {
			*out = t[i].v;
			return 0;
		}
	return -1;
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ex;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((ex = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return ok ? 0 : -1;
}

/*
 * A certificate for key, named cn (SAN san, may be NULL), valid from
 * now+from to now+until seconds, signed by issuer/ikey (NULL: itself).
 */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
    EVP_PKEY *ikey, long from, long until, int is_ca)
{
	X509 *x = X509_new();
	X509_NAME *name;
	BIGNUM *bn = BN_new();

	if (x == NULL || bn == NULL)
		goto fail;
	if (!X509_set_version(x, 2) || !BN_rand(bn, 64, 0, 0) ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_gmtime_adj(X509_getm_notBefore(x), from) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), until) == NULL ||
	    !X509_set_pubkey(x, key))
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"smtpfault", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) :
	    name))
		goto fail;
	if (add_ext(x, issuer ? issuer : x, NID_basic_constraints, is_ca ?
	    "critical,CA:TRUE" : "CA:FALSE") == -1 ||
	    add_ext(x, issuer ? issuer : x, NID_key_usage, is_ca ?
	    "critical,keyCertSign,cRLSign" :
	    "critical,digitalSignature,keyAgreement") == -1 ||
	    add_ext(x, issuer ? issuer : x, NID_subject_key_identifier,
	    "hash") == -1)
		goto fail;
	if (!is_ca && (add_ext(x, issuer ? issuer : x, NID_ext_key_usage,
	    "serverAuth") == -1 || (san != NULL && add_ext(x, issuer ?
	    issuer : x, NID_subject_alt_name, san) == -1)))
		goto fail;
	if (!X509_sign(x, ikey ? ikey : key, EVP_sha256()))
		goto fail;
	BN_free(bn);
	return x;
fail:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

static SSL_CTX *
ctx_base(const struct conf *cf, int minv, int maxv, char *err, size_t el)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	if (c == NULL) {
		snprintf(err, el, "SSL_CTX_new: %s", tlsio_error(err, el));
		return NULL;
	}
	SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION);
	/* RELEASE_BUFFERS: an idle TLS session keeps no 16 KB records */
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(c, (const unsigned char *)"smtpfault",
	    9);
	if ((minv && !SSL_CTX_set_min_proto_version(c, minv)) ||
	    (maxv && !SSL_CTX_set_max_proto_version(c, maxv))) {
		snprintf(err, el, "[tls] min_version/max_version refused");
		SSL_CTX_free(c);
		return NULL;
	}
	(void)cf;
	return c;
}

static int
ctx_use(SSL_CTX *c, X509 *cert, EVP_PKEY *key, X509 *chain, char *err,
    size_t el)
{
	char e[256];

	if (!SSL_CTX_use_certificate(c, cert) ||
	    !SSL_CTX_use_PrivateKey(c, key) ||
	    (chain != NULL && !SSL_CTX_add1_chain_cert(c, chain))) {
		snprintf(err, el, "certificate: %s", tlsio_error(e, sizeof(e)));
		return -1;
	}
	return 0;
}

/* The good context from [tls] cert/key/chain files. */
static SSL_CTX *
ctx_from_files(const struct conf *cf, int minv, int maxv, char *err,
    size_t el)
{
	SSL_CTX *c = ctx_base(cf, minv, maxv, err, el);
	char e[256];

	if (c == NULL)
		return NULL;
	if (!SSL_CTX_use_certificate_chain_file(c, cf->tls_cert)) {
		snprintf(err, el, "[tls] cert = %s: %s", cf->tls_cert,
		    tlsio_error(e, sizeof(e)));
		goto fail;
	}
	if (!SSL_CTX_use_PrivateKey_file(c, cf->tls_key[0] ? cf->tls_key :
	    cf->tls_cert, SSL_FILETYPE_PEM)) {
		snprintf(err, el, "[tls] key = %s: %s", cf->tls_key[0] ?
		    cf->tls_key : cf->tls_cert, tlsio_error(e, sizeof(e)));
		goto fail;
	}
	if (!SSL_CTX_check_private_key(c)) {
		snprintf(err, el, "[tls] key does not match cert: %s",
		    tlsio_error(e, sizeof(e)));
		goto fail;
	}
	if (cf->tls_chain[0] != '\0') {
		FILE *fp = fopen(cf->tls_chain, "r");
		X509 *x;
		int n = 0;

		if (fp == NULL) {
			snprintf(err, el, "[tls] chain = %s: %s", cf->tls_chain,
			    strerror(errno));
			goto fail;
		}
		while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
			SSL_CTX_add0_chain_cert(c, x);
			n++;
		}
		ERR_clear_error();
		fclose(fp);
		if (n == 0) {
			snprintf(err, el, "[tls] chain = %s: no certificate",
			    cf->tls_chain);
			goto fail;
		}
	}
	return c;
fail:
	SSL_CTX_free(c);
	return NULL;
}

static int
ciphers(SSL_CTX *c, const struct conf *cf, char *err, size_t el)
{
	char e[256];

	if (cf->tls_ciphers[0] && !SSL_CTX_set_cipher_list(c,
	    cf->tls_ciphers)) {
		snprintf(err, el, "[tls] ciphers = %s: %s", cf->tls_ciphers,
		    tlsio_error(e, sizeof(e)));
		return -1;
	}
	if (cf->tls_ciphersuites[0] && !SSL_CTX_set_ciphersuites(c,
	    cf->tls_ciphersuites)) {
		snprintf(err, el, "[tls] ciphersuites = %s: %s",
		    cf->tls_ciphersuites, tlsio_error(e, sizeof(e)));
		return -1;
	}
	return 0;
}

/* A fault context: the generated leaf (or another), and protocol limits. */
static SSL_CTX *
ctx_fault(const struct conf *cf, enum tls_variant v, X509 *leaf,
    EVP_PKEY *key, char *err, size_t el)
{
	int minv = 0, maxv = 0;
	SSL_CTX *c;

	if (v == TV_TLS1)
		minv = maxv = TLS1_VERSION;
	else if (v == TV_TLS11)
		minv = maxv = TLS1_1_VERSION;
	else if (v == TV_WEAK_CIPHERS)
		maxv = TLS1_2_VERSION;
	if ((c = ctx_base(cf, minv, maxv, err, el)) == NULL)
		return NULL;
	if (v == TV_TLS1 || v == TV_TLS11 || v == TV_WEAK_CIPHERS) {
		/* OpenSSL 3 refuses these below security level 0 */
		SSL_CTX_set_security_level(c, 0);
		SSL_CTX_set_cipher_list(c, v == TV_WEAK_CIPHERS ?
		    "NULL-SHA256:NULL-SHA:@SECLEVEL=0" : "DEFAULT:@SECLEVEL=0");
	}
	if (ctx_use(c, leaf, key, v == TV_SELF_SIGNED ||
	    v == TV_UNKNOWN_CA ? NULL : ca_cert, err, el) == -1) {
		SSL_CTX_free(c);
		return NULL;
	}
	return c;
}

int
tlsio_init(const struct conf *cf, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL, *other_key = NULL;
	X509 *leaf[TV__COUNT] = { NULL }, *other_ca = NULL;
	char san[600], host[256];
	int minv = 0, maxv = 0, i, rc = -1;

	tlsio_free();
	snprintf(host, sizeof(host), "%s", cf->hostname);
	snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1,"
	    "IP:::1", host);
	if (tlsio_parse_version(cf->tls_min_version, &minv) == -1 ||
	    tlsio_parse_version(cf->tls_max_version, &maxv) == -1) {
		snprintf(err, errlen, "[tls] bad min_version/max_version");
		return -1;
	}
	if ((ca_key = EVP_EC_gen("P-256")) == NULL ||
	    (key = EVP_EC_gen("P-256")) == NULL ||
	    (other_key = EVP_EC_gen("P-256")) == NULL ||
	    (ca_cert = make_cert(ca_key, "smtpfault test CA", NULL, NULL, NULL,
	    -DAY, 3650 * DAY, 1)) == NULL ||
	    (other_ca = make_cert(other_key, "smtpfault unknown CA", NULL,
	    NULL, NULL, -DAY, 3650 * DAY, 1)) == NULL) {
		snprintf(err, errlen, "generating certificates failed");
		goto done;
	}
	leaf[TV_GOOD] = make_cert(key, host, san, ca_cert, ca_key, -DAY,
	    365 * DAY, 0);
	leaf[TV_EXPIRED] = make_cert(key, host, san, ca_cert, ca_key,
	    -60 * DAY, -30 * DAY, 0);
	leaf[TV_NOT_YET_VALID] = make_cert(key, host, san, ca_cert, ca_key,
	    30 * DAY, 60 * DAY, 0);
	leaf[TV_WRONG_HOST] = make_cert(key, "wrong.invalid",
	    "DNS:wrong.invalid", ca_cert, ca_key, -DAY, 365 * DAY, 0);
	leaf[TV_SELF_SIGNED] = make_cert(key, host, san, NULL, NULL, -DAY,
	    365 * DAY, 0);
	leaf[TV_UNKNOWN_CA] = make_cert(key, host, san, other_ca, other_key,
	    -DAY, 365 * DAY, 0);
	for (i = 0; i < TV_TLS1; i++)
		if (leaf[i] == NULL) {
			snprintf(err, errlen, "generating certificates failed");
			goto done;
		}
	if (cf->tls_cert[0] != '\0')
		ctxs[TV_GOOD] = ctx_from_files(cf, minv, maxv, err, errlen);
	else if ((ctxs[TV_GOOD] = ctx_base(cf, minv, maxv, err, errlen)) &&
	    ctx_use(ctxs[TV_GOOD], leaf[TV_GOOD], key, ca_cert, err,
	    errlen) == -1) {
		SSL_CTX_free(ctxs[TV_GOOD]);
		ctxs[TV_GOOD] = NULL;
	}
	if (ctxs[TV_GOOD] == NULL || ciphers(ctxs[TV_GOOD], cf, err,
	    errlen) == -1)
		goto done;
	for (i = 1; i < TV__COUNT; i++) {
		X509 *l = i < TV_TLS1 ? leaf[i] : leaf[TV_GOOD];

		if ((ctxs[i] = ctx_fault(cf, (enum tls_variant)i, l, key, err,
		    errlen)) == NULL)
			goto done;
	}
	rc = 0;
done:
	for (i = 0; i < TV__COUNT; i++)
		X509_free(leaf[i]);
	X509_free(other_ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other_key);
	if (rc == -1)
		tlsio_free();
	return rc;
}

void
tlsio_free(void)
{
	int i;

	for (i = 0; i < TV__COUNT; i++) {
		SSL_CTX_free(ctxs[i]);
		ctxs[i] = NULL;
	}
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	ca_cert = NULL;
	ca_key = NULL;
}

SSL_CTX *
tlsio_ctx(enum tls_variant v)
{
	return v < TV__COUNT ? ctxs[v] : NULL;
}

int
tlsio_write_ca(const char *path)
{
	FILE *fp;
	int ok;

	if (ca_cert == NULL) {
		errno = ENOENT;
		return -1;
	}
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	ok = PEM_write_X509(fp, ca_cert);
	if (fclose(fp) == EOF || !ok)
		return -1;
	return 0;
}
