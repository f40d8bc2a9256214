"""``savi inspect``: a static HTML site over a preference file, opened from disk (no server, no network).

* ``index.html`` lists every pair, page by page, with filters (generator, tagged or not, never learned, text),
  the records the pairs file could not give (``file:line:field``) and the items the generation run skipped or
  failed (from its report, with reasons); the list lives in ``index-data.js`` and ``index.js`` draws one page at a
  time, so the index stays fast at 100k pairs.
* ``pairs/<k>/<n>.html``: one page per pair -- the sampled frames and, for RRPO pairs, the perturbed frames the
  model answered from (:mod:`savi_plugin.inspection.thumbnails`), the question, chosen and rejected with their
  ``<MASK>`` phrases highlighted, source, weight and meta; with training diagnostics
  (:mod:`savi_plugin.training.diagnostics`) the reward margin over steps and the chosen tokens coloured by their
  KL to the reference. Rows are joined by id and checked by content (``pair_sha256``,
  :func:`~savi_plugin.data.identity.pair_digest`): a row written for another file's pair of the same id is not
  shown, and counted in one warning naming the diagnostics file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from savi_plugin.data.diagnostics_rows import DiagnosticsLines, is_number
from savi_plugin.data.identity import pair_digest
from savi_plugin.data.paths import path_from_file, resolve_video_path
from savi_plugin.data.readers import (
    BAD_RECORD,
    iter_json_objects,
    read_records,
)
from savi_plugin.data.record import DataError, PreferenceRecord
from savi_plugin.inspection.html import coloured_tokens, escape, highlight_tags, page
from savi_plugin.inspection.thumbnails import Thumbs, ThumbnailWriter

log = logging.getLogger(__name__)

#: pair pages per sub-folder of ``pairs/`` (no folder of 100k files)
PAGES_PER_FOLDER = 1000


@dataclass
class SiteSummary:
    """What :func:`build_site` wrote."""

    out: Path
    pairs: int
    bad_records: int
    skipped_items: int
    with_diagnostics: int
    never_learned: list[str] = field(default_factory=list)
    #: pairs (with pages, counted in ``bad_records``) whose video path training skips: outside the data root
    refused_videos: int = 0
    #: diagnostics rows dropped: written for a pair of the same id and other content (another pair file)
    diagnostics_mismatched: int = 0
    #: diagnostics rows dropped: their id names no (valid) pair of the pair file
    diagnostics_unmatched: int = 0
    #: bad lines of the diagnostics file (each at its ``file:line``, listed with the bad records)
    diagnostics_problems: list[str] = field(default_factory=list)
    #: why the pair file's generation run is unfinished (shown at the top of the index), or None
    unfinished: str | None = None


def pair_page_path(number: int) -> str:
    """The site path of pair ``number`` (1-based position in the file)."""
    return f"pairs/{number // PAGES_PER_FOLDER}/{number}.html"


def _video_path(record: PreferenceRecord, pairs: Path, data_root: str | None, line: int | None = None) -> Path:
    """The file a record's video names, as training resolves it: with a data root, by training's rule
    (:func:`~savi_plugin.data.paths.resolve_video_path`, the one ``savi data validate --data-root`` asks).

    Raises:
        DataError: the record's video path is refused (``PathEscapeError``: it leaves the data root), with the
            words ``savi data validate`` says, at ``pairs:line:video``.
    """
    try:
        if data_root:
            return Path(resolve_video_path(record.video, data_root, confine=True, file=str(pairs), line=line))
        return path_from_file(record.video, pairs)
    except DataError:
        raise
    except (ValueError, OSError) as exc:  # a name the file system cannot hold
        raise DataError(str(pairs), line, "video", str(exc)) from None


def pair_videos(pairs: str | Path, fmt: str = "savi", data_root: str | None = None) -> list[Path]:
    """The videos the site of ``pairs`` shows (resolved as its pages resolve them), once each: inputs of
    ``savi inspect``, which its site folder may not be nor hold (:func:`savi_plugin.data.outputs.claim`). Read
    before the site is claimed, so a file of which no record is a pair is refused here, as ``savi data validate``
    refuses it (exit 1), and no site is written.

    Raises:
        RunError: the file has records and none of them is a preference pair (``file:line:field: message`` of
            the first, and the count).
    """
    from savi_plugin.errors import RunError

    pairs = Path(pairs)
    bad: list[DataError] = []
    videos, found = [], 0
    for line, record in read_records(pairs, fmt, errors="collect", collected=bad):
        found += 1
        try:
            videos.append(_video_path(record, pairs, data_root, line))
        except DataError:
            pass  # the page says why; the video is none of the site's inputs
    if not found and bad:
        raise RunError(f"{bad[0]} (no record of {pairs} is a preference pair in the {fmt} format: {len(bad)} bad "
                       f"record(s); nothing written)")
    return list(dict.fromkeys(videos))


def read_run_report(path: Path | None, pairs: Path, explicit: bool = True) -> list[dict[str, Any]]:
    """The items a run report lists as skipped or failed, each a dict with ``status``: a generation report's
    ``skipped``/``failed`` lists (a merge's: its shards' runs', under ``run``), or a training report's
    ``dataset.skipped_records``; [] when there is none. A JSON object that is no report savi writes
    (:func:`savi_plugin.data.provenance.report_kind`: ``{}``, another tool's results) is refused, naming the keys
    it lacks -- never read as a report with nothing skipped.

    The report is read by the one reader of run reports (:func:`savi_plugin.data.provenance.load_report`) and must
    vouch for ``pairs``: a report whose stored content (size and SHA-256; a training report's ``dataset.content``)
    is not ``pairs``'s, or a training report of another data file, is refused -- its items are another file's. A
    report given by hand (``explicit``) that stores no content is refused too: nothing ties it to ``pairs``; the
    report beside ``pairs`` (:func:`default_run_report`) is its own by name. A generation report whose counts are
    not what its own lists give (edited), or whose lists repeat a record, is refused by that reader.

    Raises:
        RunError: one line naming the report (and the line or field) or the pair file.
    """
    from savi_plugin.data.identity import file_identity, same_identity
    from savi_plugin.data.paths import path_from_file
    from savi_plugin.data.provenance import (CHANGED, EditedReportError, RunReportError, load_report, not_a_report,
                                             report_kind)
    from savi_plugin.errors import RunError

    if path is None:
        return []
    try:
        data = load_report(path)
    except EditedReportError as exc:
        raise RunError(f"{exc}; give --run-report the report its run wrote") from None
    except RunReportError as exc:
        raise RunError(str(exc)) from None

    def refuse(field: str, message: str) -> RunError:
        return RunError(f"{path}: run report: {field}: {message}")

    def entries(value: Any, field: str) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise refuse(field, f"expected a list of items, got {type(value).__name__}")
        for k, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise refuse(f"{field}[{k}]", f"expected an object, got {type(entry).__name__}")
            for key in ("id", "item", "reason", "detail"):
                if entry.get(key) is not None and (not isinstance(entry[key], (str, int))
                                                   or isinstance(entry[key], bool)):
                    raise refuse(f"{field}[{k}].{key}", f"expected text, got {type(entry[key]).__name__}")
        return value

    kind = report_kind(data)
    if kind is None:  # another tool's JSON, or {}: never read as a report with nothing skipped
        raise RunError(f"{path}: run report: {not_a_report(data)}")
    if kind == "savi train":
        dataset = data.get("dataset")
        if not isinstance(dataset, dict):
            raise refuse("dataset", f"expected an object, got {type(dataset).__name__}")
        stored = dataset.get("content")
        named = dataset.get("path")
        if stored is None and isinstance(named, str):  # a report without the digest: the file it names
            other = path_from_file(named, path)
            if not (other.is_file() and pairs.is_file() and os.path.samefile(other, pairs)):
                raise RunError(f"{pairs}: {path} is the report of a training on {other}, not on this file; give "
                               f"--run-report the report of this file's own run")
        elif stored is None:
            raise refuse("dataset.content", "absent (and no dataset.path): the report names no data file, so it "
                                            "cannot vouch for this one")
        listed = [dict(e, status="skipped in training") for e in entries(dataset.get("skipped_records"),
                                                                          "dataset.skipped_records")]
    else:  # a generation run's lists; a merge's are its shards' runs' (``run``), a conversion has none
        stored = data.get("content")
        lists, at = (data.get("run"), "run.") if kind == "savi generate merge" else (data, "")
        if kind == "savi generate merge" and lists is not None and not isinstance(lists, dict):
            raise refuse("run", f"expected an object, got {type(lists).__name__}")
        lists = lists or {}
        listed = [dict(e, status=status) for status in ("skipped", "failed")
                  for e in entries(lists.get(status), at + status)]
    if stored is None and kind != "savi train" and explicit:  # nothing ties the report to this file
        raise refuse("content", f"absent: the report records no content of the file it reports on, so it cannot "
                                f"vouch for {pairs}; give --run-report the report of this file's own run")
    if isinstance(stored, dict) and not same_identity(stored, file_identity(pairs)):
        raise RunError(f"{pairs}: {CHANGED}: {path}; give --run-report the report of this file's own run (or "
                       f"regenerate the file)")
    return listed


def default_run_report(pairs: Path) -> Path | None:
    """The run report beside a pairs file (``<pairs>.report.json``, the one place a run report has), or None."""
    from savi_plugin.data.outputs import sidecar

    path = sidecar(pairs, "report.json")
    return path if os.path.lexists(path) else None


def read_diagnostics(path: Path | None, problems: list[DataError] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per-pair training diagnostics (JSONL, one line per pair and evaluation point), by pair id, in step order.

    Read by the readers' one rule (:func:`savi_plugin.data.readers.iter_json_objects`): a bad line -- torn (the
    last line of a training killed while appending), not JSON, not UTF-8, too long, or not a diagnostics row as
    training writes it (:class:`~savi_plugin.data.diagnostics_rows.DiagnosticsLines`: a value of the wrong type,
    a step or value out of its range, a step before an earlier row's, a pair's step twice) -- is one problem at
    its own ``file:line:field``, appended to ``problems``, and the rows after it are still read (without
    ``problems``, the first one raises :class:`DataError`).
    """
    if path is None:
        return {}
    by_id: dict[str, list[dict[str, Any]]] = {}
    lines = DiagnosticsLines()
    for number, row in iter_json_objects(path, problems, array=False):  # JSONL only
        bad = lines.problem(row, number)
        if bad is None:
            by_id.setdefault(str(row["id"]), []).append(row)
            continue
        problem = DataError(str(path), number, None if bad[0] == "-" else bad[0], bad[1])
        problem.reason = BAD_RECORD
        if problems is None:
            raise problem
        problems.append(problem)
    for rows in by_id.values():
        rows.sort(key=lambda r: r["step"])
    return by_id


def never_learned(rows: list[dict[str, Any]]) -> bool:
    """A pair the model never learns: its reward margin is not positive at any evaluation point."""
    margins = [r.get("margin") for r in rows if isinstance(r.get("margin"), (int, float))]
    return bool(margins) and all(not (m > 0) for m in margins)


def _margin_svg(rows: list[dict[str, Any]]) -> str:
    points = [(r["step"], float(r["margin"])) for r in rows if is_number(r.get("margin"))]
    if not points:
        return ""
    w, h, pad = 420, 140, 24
    xs, ys = [p[0] for p in points], [p[1] for p in points] + [0.0]
    x0, x1, y0, y1 = min(xs), max(xs) or 1, min(ys), max(ys)
    sx = (lambda x: pad + (w - 2 * pad) * ((x - x0) / ((x1 - x0) or 1)))
    sy = (lambda y: h - pad - (h - 2 * pad) * ((y - y0) / ((y1 - y0) or 1)))
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    dots = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"><title>step {x}: {y:.4g}</title></circle>'
                   for x, y in points)
    return (f'<svg class="margin" width="{w}" height="{h}" role="img" aria-label="reward margin over steps">'
            f'<line x1="{pad}" x2="{w - pad}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#999"/>'
            f'<polyline fill="none" stroke="#1e88e5" stroke-width="2" points="{line}"/>{dots}'
            f'<text x="{pad}" y="14" font-size="11">margin {y0:.3g} .. {y1:.3g}, steps {x0}..{x1}</text></svg>')


#: most characters of a record's ``meta`` a pair page shows (a stored perturbation may be long)
META_CHARS = 65_536


def _meta_text(meta: Any) -> str:
    """``meta`` as JSON for a pair page: indented when short, else compact and cut at :data:`META_CHARS`."""
    compact = json.dumps(meta, default=str)
    if len(compact) <= META_CHARS // 4:
        return json.dumps(meta, indent=1, default=str)
    if len(compact) <= META_CHARS:
        return compact
    return f"{compact[:META_CHARS]} ... ({len(compact) - META_CHARS} more characters)"


def _pair_page(number: int, total: int, record: PreferenceRecord, thumbs, video: Path | None,
               diagnostics: list[dict[str, Any]]) -> str:
    up = "../../"
    nav = [f'<a href="{up}index.html">index</a>']
    if number > 1:
        nav.append(f'<a href="{up}{pair_page_path(number - 1)}">previous</a>')
    if number < total:
        nav.append(f'<a href="{up}{pair_page_path(number + 1)}">next</a>')
    body = [f'<p class="nav">{"".join(nav)}</p>', f"<h1>{escape(record.id)}</h1>",
            f'<p>video: <code>{escape(record.video)}</code> &middot; source: {escape(record.source)} &middot; '
            f'weight: {escape(record.weight if record.weight is not None else 1)} &middot; '
            f'{"tagged" if record.is_tagged else "untagged"}</p>', "<h2>frames</h2>"]
    if thumbs.problem:
        body.append(f'<div class="thumbs"><span class="missing">{escape(thumbs.problem)}</span></div>')
    else:
        body.append('<div class="thumbs" id="frames">' + "".join(
            f'<img src="{up}{p}" alt="frame">' for p in thumbs.frames) + "</div>")
    if thumbs.perturbed or thumbs.perturb_problem:
        body.append("<h2>perturbed frames the model answered from</h2>")
        body.append(f'<p class="bad">{escape(thumbs.perturb_problem)}</p>' if thumbs.perturb_problem else
                    '<div class="thumbs" id="perturbed">' + "".join(
                        f'<img src="{up}{p}" alt="perturbed frame">' for p in thumbs.perturbed) + "</div>")
    body += [f"<h2>question</h2><div class=\"resp\">{escape(record.question)}</div>",
             f'<h2>chosen</h2><div class="resp chosen" id="chosen">'
             f"{highlight_tags(record.chosen_tagged, record.chosen)}</div>",
             f'<h2>rejected</h2><div class="resp rejected" id="rejected">'
             f"{highlight_tags(record.rejected_tagged, record.rejected)}</div>"]
    if diagnostics:
        last = diagnostics[-1]
        body.append("<h2>training diagnostics</h2>")
        body.append("<p>" + " &middot; ".join(
            f"{escape(k)}: {escape(round(v, 5) if isinstance(v, float) else v)}" for k, v in last.items()
            if k not in ("id", "chosen_tokens", "chosen_token_kl")) + "</p>")
        body.append(_margin_svg(diagnostics))
        if never_learned(diagnostics):
            body.append('<p class="bad" id="never-learned">never learned: the reward margin was not positive at '
                        'any evaluation point</p>')
        if last.get("chosen_tokens") and last.get("chosen_token_kl"):
            body.append('<h2>chosen tokens coloured by KL(reference || policy)</h2><div class="resp" id="kl">'
                        + coloured_tokens(last["chosen_tokens"], last["chosen_token_kl"]) + "</div>")
    body.append(f'<h2>meta</h2><div class="meta">{escape(_meta_text(record.meta))}</div>')
    return page(f"pair {record.id}", body)


INDEX_JS = r"""
(function(){
var P=window.SAVI_PAIRS||[],S=window.SAVI_SKIPPED||[],B=window.SAVI_BAD||[],size=window.SAVI_PAGE_SIZE||100;
var state={page:0};
function el(id){return document.getElementById(id);}
function esc(t){return String(t).replace(/[&<>"]/g,function(c){return{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function rows(){
  var view=el('view').value,gen=el('generator').value,tag=el('tagged').value,q=el('q').value.toLowerCase();
  if(view==='bad')return B.filter(function(b){return !q||(b[0]+b[1]).toLowerCase().indexOf(q)>=0;});
  if(view==='skipped')return S.filter(function(s){return (gen===''||s[3]===gen)&&(!q||(s[0]+s[1]+s[2]).toLowerCase().indexOf(q)>=0);});
  return P.filter(function(p){
    if(gen!==''&&p[2]!==gen)return false;
    if(tag==='tagged'&&!p[3])return false; if(tag==='untagged'&&p[3])return false;
    if(view==='never'&&!p[7])return false;
    return !q||(p[1]+' '+p[4]).toLowerCase().indexOf(q)>=0;});
}
function draw(){
  var r=rows(),view=el('view').value,pages=Math.max(1,Math.ceil(r.length/size));
  if(state.page>=pages)state.page=pages-1;
  var part=r.slice(state.page*size,(state.page+1)*size),h=[];
  if(view==='bad'){h.push('<tr><th>where</th><th>problem</th></tr>');
    part.forEach(function(b){h.push('<tr class="bad"><td>'+esc(b[0])+'</td><td>'+esc(b[1])+'</td></tr>');});}
  else if(view==='skipped'){h.push('<tr><th>id</th><th>status</th><th>reason</th><th>detail</th></tr>');
    part.forEach(function(s){h.push('<tr><td>'+esc(s[0])+'</td><td>'+esc(s[4])+'</td><td>'+esc(s[1])+'</td><td>'+esc(s[2])+'</td></tr>');});}
  else{h.push('<tr><th>#</th><th>id</th><th>generator</th><th>tagged</th><th>question</th><th>weight</th><th>margin</th></tr>');
    part.forEach(function(p){h.push('<tr class="pair"><td>'+p[0]+'</td><td><a href="'+esc(p[5])+'">'+esc(p[1])+'</a></td><td>'+esc(p[2])+
      '</td><td>'+(p[3]?'yes':'no')+'</td><td>'+esc(p[4])+'</td><td>'+esc(p[6])+'</td><td>'+(p[8]===null?'':esc(p[8]))+'</td></tr>');});}
  el('rows').innerHTML=h.join('');
  el('count').textContent=r.length+' shown of '+P.length+' pairs, '+S.length+' skipped items, '+B.length+' bad records; page '+(state.page+1)+' of '+pages;
}
['view','generator','tagged','q'].forEach(function(id){el(id).addEventListener('input',function(){state.page=0;draw();});});
el('prev').addEventListener('click',function(){if(state.page>0){state.page--;draw();}});
el('next').addEventListener('click',function(){state.page++;draw();});
var gens={};P.forEach(function(p){gens[p[2]]=1;});S.forEach(function(s){gens[s[3]]=1;});
Object.keys(gens).sort().forEach(function(g){var o=document.createElement('option');o.value=g;o.textContent=g;el('generator').appendChild(o);});
draw();
})();
"""


def _unfinished_note(why: str | None) -> list[str]:
    """The line at the top of the index for a pair file whose generation run did not finish."""
    if why is None:
        return []
    return [f'<p id="unfinished"><strong>The generation run of this file did not finish</strong>: {escape(why)}. '
            f"These pages show the pairs written so far.</p>"]


def _index_page(title: str, unfinished: str | None = None) -> str:
    body = [f"<h1>{escape(title)}</h1>", *_unfinished_note(unfinished), '<div id="filters">',
            '<label>show <select id="view"><option value="pairs">pairs</option>'
            '<option value="never">pairs never learned</option><option value="skipped">skipped items</option>'
            '<option value="bad">bad records</option></select></label>',
            '<label>generator <select id="generator"><option value="">all</option></select></label>',
            '<label>tags <select id="tagged"><option value="">all</option><option value="tagged">tagged</option>'
            '<option value="untagged">untagged</option></select></label>',
            '<label>search <input id="q" type="search"></label>',
            '<button id="prev">previous page</button> <button id="next">next page</button></div>',
            '<p id="count">loading...</p><table id="rows"></table>',
            "<noscript>This index needs JavaScript; every pair page works without it.</noscript>"]
    return page(title, body, scripts=("index-data.js", "index.js"))


def build_site(pairs: str | Path, out: str | Path, *, fmt: str = "savi", data_root: str | None = None,
               run_report: str | Path | None = None, diagnostics: str | Path | None = None, frames: int = 8,
               page_size: int = 100, progress: bool = True) -> SiteSummary:
    """Write the site for preference file ``pairs`` into the folder ``out`` (created; the caller owns it).

    Args:
        pairs: the preference file (``fmt``: savi, rrpo or trl). Bad records are listed, not fatal.
        out: the site folder.
        data_root: as for training: relative video paths start there and may not leave it (a pair whose video
            leaves it is a bad record; its page says why).
        run_report: the generation (or training) report whose skipped items to list; default: the generation
            report beside ``pairs``.
        diagnostics: a per-pair diagnostics JSONL written by ``savi train`` with ``train.diagnostics: true``.
        frames: thumbnails per pair (0: none).
        page_size: rows per index page.
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm

    pairs, out = Path(pairs), Path(out)
    bad: list[DataError] = []
    records = list(read_records(pairs, fmt, errors="collect", collected=bad))
    from savi_plugin.data.provenance import unfinished_run

    unfinished = unfinished_run(pairs)
    if unfinished is not None:
        log.warning("%s: the generation run of this file did not finish: %s (the site says so at its top)", pairs,
                    unfinished)
    report_path = Path(run_report) if run_report is not None else default_run_report(pairs)
    skipped = read_run_report(report_path, pairs, explicit=run_report is not None)
    diag_problems: list[DataError] = []
    diag = read_diagnostics(Path(diagnostics) if diagnostics is not None else None, diag_problems)
    thumbs = ThumbnailWriter(out, limit=frames)
    index_rows, learned_never = [], []
    refused_videos: list[DataError] = []
    mismatched, joined = 0, {}
    total = len(records)
    for number, (line, record) in enumerate(tqdm(records, desc="pair pages", unit="pair", disable=not progress),
                                             start=1):
        try:
            video, refused = _video_path(record, pairs, data_root, line), None
        except DataError as exc:  # training skips this pair: its page says why, and it is a bad record
            video, refused = None, exc
            refused_videos.append(exc)
        meta = record.meta if isinstance(record.meta, dict) else {}
        num_frames = int(meta.get("num_frames") or max(frames, 1)) if isinstance(
            meta.get("num_frames", 0), int) else max(frames, 1)
        perturbation = meta.get("perturbation") if isinstance(meta.get("perturbation"), list) else None
        shots = (Thumbs([], [], problem=f"video refused: {refused.message}") if refused is not None else
                 thumbs.for_pair(video, num_frames, perturbation, str(number)))
        rows = diag.get(record.id, [])
        digest = pair_digest(record)
        mismatched += sum(1 for r in rows if r.get("pair_sha256") not in (None, digest))
        rows = [r for r in rows if r.get("pair_sha256") in (None, digest)]  # None: a file written before digests
        target = out / pair_page_path(number)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_pair_page(number, total, record, shots, video, rows), encoding="utf-8")
        joined[record.id] = joined.get(record.id, False) or bool(rows)
        never = never_learned(rows)
        if never:
            learned_never.append(record.id)
        margin = rows[-1].get("margin") if rows else None
        index_rows.append([number, record.id, record.source, int(record.is_tagged), record.question[:120],
                           pair_page_path(number), record.weight if record.weight is not None else 1, int(never),
                           round(margin, 4) if isinstance(margin, float) and math.isfinite(margin) else None])
    skipped_rows = [[str(s.get("id") or s.get("item") or ""), str(s.get("reason", "")),
                     str(s.get("detail", ""))[:300], str(s.get("generator", records[0][1].source if records else "")),
                     s["status"]] for s in skipped]
    bad_rows = [[e.where, e.message]  # a JSON array's record at the text line it starts on, as the readers say
                for e in bad + refused_videos + diag_problems]
    data = ("window.SAVI_PAGE_SIZE=" + json.dumps(page_size) + ";\nwindow.SAVI_PAIRS="
            + json.dumps(index_rows, separators=(",", ":")) + ";\nwindow.SAVI_SKIPPED="
            + json.dumps(skipped_rows, separators=(",", ":")) + ";\nwindow.SAVI_BAD="
            + json.dumps(bad_rows, separators=(",", ":")) + ";\n")
    (out / "index-data.js").write_text(data, encoding="utf-8")
    (out / "index.js").write_text(INDEX_JS, encoding="utf-8")
    (out / "index.html").write_text(_index_page(f"preference pairs: {pairs.name}", unfinished), encoding="utf-8")
    if mismatched:
        log.warning("%s: %d row(s) were written for other pairs of the same ids (their text differs from %s): "
                    "not shown", diagnostics, mismatched, pairs)
    ids = {r.id for _, r in records}
    unmatched = sum(len(rows) for pair_id, rows in diag.items() if pair_id not in ids)
    if unmatched:
        log.warning("%s: %d row(s) name an id of no pair in %s: not shown", diagnostics, unmatched, pairs)
    if refused_videos:
        log.warning("%s: %d pair(s) whose video training would skip (listed with the bad records; each page says "
                    "why); the first: %s", pairs, len(refused_videos), refused_videos[0])
    return SiteSummary(out=out, pairs=total, bad_records=len(bad) + len(refused_videos),
                       refused_videos=len(refused_videos), skipped_items=len(skipped),
                       with_diagnostics=len({r.id for _, r in records if joined.get(r.id)}),
                       never_learned=learned_never, diagnostics_mismatched=mismatched,
                       diagnostics_unmatched=unmatched,
                       diagnostics_problems=[str(p) for p in diag_problems], unfinished=unfinished)
