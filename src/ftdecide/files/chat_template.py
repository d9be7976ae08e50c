"""A model's chat template, rendered as the trainers render it, so that chat examples are counted with their
template's tokens (the role headers, separators and special tokens) rather than a stated per-message guess.

The template is the model folder's ``chat_template.jinja`` (what transformers 5 saves) or the ``chat_template``
of its ``tokenizer_config.json`` (a string, or a list of named templates: the one named ``default``). It is
rendered as ``apply_chat_template`` renders it: jinja2's immutable sandbox, ``trim_blocks`` and
``lstrip_blocks``, with ``messages``, ``add_generation_prompt=False``, the special tokens the config names, and
``raise_exception``. jinja2 is an optional extra (``pip install 'ftdecide[data]'``); without it, or without a
template, the per-message overhead is assumed and said.

A template is the user's file and may be hostile: any error it raises is one line naming the file; the
sandbox refuses attribute tricks and bounds ``range``; one render may take at most :data:`RENDER_SECONDS`
(where a timer can be set: the main thread of a Unix process) and produce at most :data:`MAX_RENDERED` characters.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Callable, Optional

from ..core.errors import InputError, preview

RENDER_SECONDS = 2.0
MAX_RENDERED = 64 * 2**20
_SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")


class _Slow(Exception):
    pass


def _template_of(model_dir: str) -> tuple[Optional[str], str, dict]:
    """(the template's source, the file it came from, the tokenizer config) of a model folder."""
    config_path = os.path.join(model_dir, "tokenizer_config.json")
    config: dict = {}
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as fh:
                loaded = json.load(fh)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise InputError(f"cannot read the tokenizer config: {preview(str(e), 100)}", config_path) from None
        config = loaded if isinstance(loaded, dict) else {}
    jinja_path = os.path.join(model_dir, "chat_template.jinja")
    if os.path.isfile(jinja_path):
        try:
            with open(jinja_path, encoding="utf-8") as fh:
                return fh.read(MAX_RENDERED), jinja_path, config
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the chat template: {preview(str(e), 100)}", jinja_path) from None
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return (template if isinstance(template, str) else None), config_path, config


def _special_tokens(config: dict) -> dict[str, str]:
    out = {}
    for name in _SPECIAL:
        v = config.get(name)
        if isinstance(v, dict):  # an AddedToken as saved: {"content": ...}
            v = v.get("content")
        if isinstance(v, str):
            out[name] = v
    return out


def template_for(model_dir: Optional[str]) -> tuple[Optional[Callable[[list], str]], str]:
    """(a function rendering a conversation's messages to the text the trainer tokenizes, what renders it),
    or (None, why not) where the folder has no template or jinja2 is not installed."""
    if not model_dir:
        return None, ""
    source, path, config = _template_of(model_dir)
    if source is None:
        return None, ""
    try:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return None, "the model's chat template needs jinja2 (pip install 'ftdecide[data]'); messages assumed"

    def raise_exception(message):
        raise TemplateError(str(message))

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        template = env.from_string(source)
    except Exception as e:  # noqa: BLE001 - a template that does not compile is the user's file to fix
        raise InputError(f"the chat template does not compile: {preview(str(e), 100)}", path) from None
    specials = _special_tokens(config)
    timed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()

    def on_alarm(signum, frame):
        raise _Slow()

    def render(messages: list) -> str:
        previous = signal.signal(signal.SIGALRM, on_alarm) if timed else None
        if timed:
            signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)
        try:
            text = template.render(messages=messages, add_generation_prompt=False, **specials)
        except _Slow:
            raise InputError(f"the chat template took over {RENDER_SECONDS:g} s for one example", path) from None
        except Exception as e:  # noqa: BLE001 - whatever the template raises (its raise_exception too) is one line
            raise InputError(f"the chat template failed: {preview(str(e), 100)}", path) from None
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        if len(text) > MAX_RENDERED:
            raise InputError(f"the chat template rendered over {MAX_RENDERED // 2**20} MiB for one example", path)
        return text

    return render, f"chat template from {path}"
