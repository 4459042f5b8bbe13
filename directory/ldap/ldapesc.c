/* ldapesc: RFC 4515 §3 value escaping for LDAP search filters. Kept apart from ldapdir.c so
 * it has no libldap dependency and can be unit-tested and reused by tools. Everything a
 * filter gives meaning to (* ( ) \ and NUL) is escaped, and so is every byte >= 0x80, so a
 * login can never change the structure of the user filter it is spliced into. Returns the
 * length written (without the NUL); on -1, out holds the empty string. */
#include "directory/ldap/ldapdir.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int ldap_filter_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        bool esc = c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0' || c >= 0x80;
        size_t need = esc ? 3 : 1;
        if (outlen < need + 1 || o > outlen - need - 1) {   /* room for it and the NUL */
            if (outlen)
                out[0] = '\0';   /* never leave a truncated value behind for a filter */
            return -1;
        }
        if (esc) {
            out[o++] = '\\';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return o > (size_t)INT32_MAX ? -1 : (int)o;
}
