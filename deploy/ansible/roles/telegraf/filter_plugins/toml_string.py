# -*- coding: utf-8 -*-
# TOML basic strings for telegraf.conf. `to_json` is close but not right for TOML: it writes characters
# outside the BMP as UTF-16 surrogate pairs ("\ud83d\ude00"), which are no valid TOML escape (Telegraf
# refuses the file), and with ensure_ascii=False it would leave DEL raw, which TOML forbids. Here: `"`, `\`
# and control characters (U+0000-U+001F, U+007F) are escaped, everything else is written as UTF-8.
# Telegraf also substitutes ${VAR} / $VAR from its environment in string values (strict mode, the default
# since 1.38: after parsing, in values only), and that environment holds the write token: a label value
# "${INFLUX_TOKEN}" would put the token into every point. So values get every "$" doubled ("$$" is
# Telegraf's escape for "$"); keys are never substituted and are written without it.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: toml_string
short_description: a TOML basic string (double-quoted) holding exactly the input
options:
  telegraf_env:
    description: Double every "$" so Telegraf's environment substitution leaves the value as it is.
    type: bool
    default: false
"""

_SHORT = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r'}


def toml_string(value, telegraf_env=False):
    text = value if isinstance(value, str) else str(value)
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif code < 0x20 or code == 0x7F:
            out.append('\\u%04X' % code)
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate is no Unicode scalar value: TOML has no way to write it.
            raise ValueError('toml_string: the value holds a lone surrogate')
        elif ch == '$' and telegraf_env:
            out.append('$$')
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


class FilterModule(object):
    def filters(self):
        return {'toml_string': toml_string}
