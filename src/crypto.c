/*
 * crypto.c - hashes, HMAC, base64 and random bytes over OpenSSL's libcrypto.
 * Used by webhook signature checks, attachments and Liquid's hash filters.
 */

/***
 * Hashes, HMAC, base64 and random bytes (OpenSSL libcrypto).
 * @module customerio.core
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "compat.h"

static const EVP_MD *crypto_md(lua_State *L, int arg) {
  static const char *const names[] = {"md5", "sha1", "sha256", "sha512", NULL};
  switch (luaL_checkoption(L, arg, NULL, names)) {
    case 0: return EVP_md5();
    case 1: return EVP_sha1();
    case 2: return EVP_sha256();
    default: return EVP_sha512();
  }
}

/***
 * Message digest of a string.
 * @function digest
 * @tparam string alg "md5", "sha1", "sha256" or "sha512"
 * @tparam string data
 * @treturn string raw digest bytes
 */
static int crypto_digest(lua_State *L) {
  const EVP_MD *md = crypto_md(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (EVP_Digest(data, len, out, &outlen, md, NULL) != 1) return luaL_error(L, "digest failed");
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

/***
 * HMAC of a string.
 * @function hmac
 * @tparam string alg as for digest
 * @tparam string key
 * @tparam string data
 * @treturn string raw MAC bytes
 */
static int crypto_hmac(lua_State *L) {
  const EVP_MD *md = crypto_md(L, 1);
  size_t klen, dlen;
  const char *key = luaL_checklstring(L, 2, &klen);
  const char *data = luaL_checklstring(L, 3, &dlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (klen > 0x7fffffff) return luaL_argerror(L, 2, "key too long");
  if (HMAC(md, key, (int)klen, (const unsigned char *)data, dlen, out, &outlen) == NULL)
    return luaL_error(L, "hmac failed");
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

/***
 * Lower-case hexadecimal form of a byte string.
 * @function hex
 */
static int crypto_hex(lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t len, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    luaL_addchar(&b, digits[s[i] >> 4]);
    luaL_addchar(&b, digits[s[i] & 15]);
  }
  luaL_pushresult(&b);
  return 1;
}

/***
 * Standard base64 (RFC 4648, with padding, no line breaks).
 * @function base64_encode
 */
static int crypto_base64_encode(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  size_t outlen;
  char *out;
  if (len > ((size_t)-1 / 4) * 3 - 3) return luaL_error(L, "base64_encode: input too large");
  outlen = 4 * ((len + 2) / 3);
  if (len == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  /* Scratch space owned by Lua, so an error cannot leak it. */
  out = (char *)lua_newuserdata(L, outlen + 1);
  /* EVP_EncodeBlock takes an int length: encode in chunks that are multiples of 3. */
  {
    size_t done = 0, written = 0;
    const size_t chunk = 3 * (1u << 20);
    while (done < len) {
      size_t n = len - done < chunk ? len - done : chunk;
      written += (size_t)EVP_EncodeBlock((unsigned char *)out + written, s + done, (int)n);
      done += n;
    }
    lua_pushlstring(L, out, written);
  }
  return 1;
}

static int crypto_b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/***
 * Decode standard base64 (padding optional). Returns nil, message on bad input.
 * @function base64_decode
 */
static int crypto_base64_decode(lua_State *L) {
  size_t len, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  unsigned int acc = 0;
  int bits = 0;
  size_t pad = 0;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    int v;
    if (s[i] == '=') {
      pad++;
      continue;
    }
    if (pad > 0 || (v = crypto_b64_value(s[i])) < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "invalid base64 at byte %d", (int)i + 1);
      return 2;
    }
    acc = (acc << 6) | (unsigned int)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      luaL_addchar(&b, (char)((acc >> bits) & 0xff));
    }
  }
  if (pad > 2 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "invalid base64 length or padding");
    return 2;
  }
  luaL_pushresult(&b);
  return 1;
}

/***
 * Cryptographically secure random bytes.
 * @function random_bytes
 */
static int crypto_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  unsigned char *p;
  luaL_argcheck(L, n >= 0 && n <= 1 << 20, 1, "between 0 and 1048576 bytes");
  p = (unsigned char *)lua_newuserdata(L, (size_t)n + 1);
  if (n > 0 && RAND_bytes(p, (int)n) != 1) return luaL_error(L, "RAND_bytes failed");
  lua_pushlstring(L, (const char *)p, (size_t)n);
  return 1;
}

/***
 * Compare two strings in constant time (for signatures).
 * @function equal_ct
 * @treturn boolean
 */
static int crypto_equal_ct(lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
  return 1;
}

static const luaL_Reg crypto_funcs[] = {
  {"digest", crypto_digest},
  {"hmac", crypto_hmac},
  {"hex", crypto_hex},
  {"base64_encode", crypto_base64_encode},
  {"base64_decode", crypto_base64_decode},
  {"random_bytes", crypto_random_bytes},
  {"equal_ct", crypto_equal_ct},
  {NULL, NULL},
};

int crypto_open(lua_State *L) {
  luaL_setfuncs(L, crypto_funcs, 0);
  return 0;
}
