"""Single-file converters (``recsage transcribe``, ``describe-image``, ``describe-video``) and ``recsage plugins``,
which lists the converters and tools that plugins register."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import cli, output_options, report, settings


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@output_options
@click.pass_context
def transcribe(ctx, file, as_json, out_file):
    """Transcribe a voice note (VAD-gated Whisper): silence and noise give empty text."""
    from agent.plugins import load_converter

    conv = load_converter(settings(ctx), "whisper").convert(file)
    d = conv.details
    out = {"text": d.get("text", ""), "language": d.get("language"), "no_speech": d.get("no_speech")}
    if report(out, as_json, out_file):
        click.echo(out["text"] or "(no speech)")


@cli.command("describe-image")
@click.argument("file", type=click.Path(path_type=Path))
@output_options
@click.pass_context
def describe_image(ctx, file, as_json, out_file):
    """Read an image: OCR text, and a CLIP caption when real CLIP weights are configured."""
    from agent.plugins import load_converter

    config = settings(ctx)
    ocr = load_converter(config, "ocr").convert(file)
    clip = load_converter(config, "clip")
    reason = clip.unavailable_reason()
    out = {"ocr_text": ocr.card_fields.get("poster_text", ""), "caption": None, "clip": "unavailable"}
    if reason is None:
        conv = clip.convert(file)
        out.update(caption=conv.card_fields.get("caption"), clip="ready")
    else:
        out["clip_note"] = reason
    if report(out, as_json, out_file):
        click.echo(f"text: {out['ocr_text'] or '(none)'}\ncaption: {out['caption'] or '(CLIP not configured)'}")


@cli.command("describe-video")
@click.argument("file", type=click.Path(path_type=Path))
@output_options
@click.pass_context
def describe_video(ctx, file, as_json, out_file):
    """Watch a video: the distinct text on its frames (OCR) and its speech (VAD-gated Whisper)."""
    from agent.plugins import load_converter

    d = load_converter(settings(ctx), "video").convert(file).details
    out = {key: d.get(key) for key in ("frames", "frame_text", "transcript", "language", "no_speech", "seconds")}
    out["timeline"] = d.get("timeline", [])
    if report(out, as_json, out_file):
        click.echo(f"on screen: {out['frame_text'] or '(no text)'}\nspeech: {out['transcript'] or '(no speech)'}")


@cli.command("plugins")
@output_options
def plugins_cmd(as_json, out_file):
    """List loaded plugins and what each registers."""
    from agent.plugins import converter_classes, plugin_manager, tool_functions

    rows = [
        {"kind": "converter", "name": n, "plugin": p, "modality": c.modality}
        for n, (c, p) in sorted(converter_classes().items())
    ] + [{"kind": "tool", "name": n, "plugin": p} for n, (_, p) in sorted(tool_functions().items())]
    if as_json or out_file:
        plugins = sorted(name for name, _ in plugin_manager().list_name_plugin())
        if not report({"plugins": plugins, "registered": rows}, as_json, out_file):
            return
    for r in rows:
        click.echo(f"{r['kind']:10} {r['name']:16} {r['plugin']}")
