#!/usr/bin/python3
"""Checks Atom feeds: an independent parser (feedparser) must read them without complaint,
and every rule of RFC 4287 that applies to them must hold. Prints each problem and exits 1
if there is any.

Usage: check_atom.py FEED...
"""

import re
import sys
import xml.etree.ElementTree as ET

import feedparser

ATOM = "{http://www.w3.org/2005/Atom}"
# RFC 3339 date-time (RFC 4287 section 3.3): upper-case T and Z, seconds required.
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# An absolute IRI: a scheme, then something (RFC 3987).
IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
TEXT_TYPES = {None, "text", "html", "xhtml"}


def children(element, name):
    return element.findall(ATOM + name)


def check_text(element, where, problems):
    kind = element.get("type")
    if kind not in TEXT_TYPES:
        problems.append(f"{where}: type {kind!r} is not text, html or xhtml")


def check_date(element, where, problems):
    if not DATE.match((element.text or "").strip()):
        problems.append(f"{where}: {element.text!r} is not an RFC 3339 date-time")


def exactly_one(parent, name, where, problems):
    found = children(parent, name)
    if len(found) != 1:
        problems.append(f"{where}: {len(found)} atom:{name} elements, exactly one required")
    return found[0] if found else None


def at_most_one(parent, name, where, problems):
    found = children(parent, name)
    if len(found) > 1:
        problems.append(f"{where}: {len(found)} atom:{name} elements, at most one allowed")


def check_links(parent, where, problems):
    alternates = set()
    for link in children(parent, "link"):
        if not link.get("href"):
            problems.append(f"{where}: atom:link without href")
        if link.get("rel", "alternate") == "alternate":
            key = (link.get("type"), link.get("hreflang"))
            if key in alternates:
                problems.append(f"{where}: two alternate links with the same type and hreflang")
            alternates.add(key)
    return alternates


def check_person(person, where, problems):
    if len(children(person, "name")) != 1:
        problems.append(f"{where}: a person construct needs exactly one atom:name")


def check(path):
    problems = []
    parsed = feedparser.parse(path)
    if parsed.bozo:
        problems.append(f"feedparser: {parsed.bozo_exception}")
    if parsed.version != "atom10":
        problems.append(f"feedparser reads it as {parsed.version!r}, not Atom 1.0")
    root = ET.parse(path).getroot()
    if root.tag != ATOM + "feed":
        return problems + [f"the root is {root.tag}, not atom:feed"]
    feed_id = exactly_one(root, "id", "feed", problems)
    if feed_id is not None and not IRI.match(feed_id.text or ""):
        problems.append(f"feed: id {feed_id.text!r} is not an absolute IRI")
    title = exactly_one(root, "title", "feed", problems)
    if title is not None:
        check_text(title, "feed title", problems)
    updated = exactly_one(root, "updated", "feed", problems)
    if updated is not None:
        check_date(updated, "feed updated", problems)
    for name in ["generator", "icon", "logo", "rights", "subtitle"]:
        at_most_one(root, name, "feed", problems)
    for person in children(root, "author"):
        check_person(person, "feed author", problems)
    check_links(root, "feed", problems)
    feed_has_author = bool(children(root, "author"))
    ids = set()
    for i, entry in enumerate(children(root, "entry")):
        where = f"entry {i + 1}"
        entry_id = exactly_one(entry, "id", where, problems)
        if entry_id is not None:
            if not IRI.match(entry_id.text or ""):
                problems.append(f"{where}: id {entry_id.text!r} is not an absolute IRI")
            if entry_id.text in ids:
                problems.append(f"{where}: id {entry_id.text!r} used twice")
            ids.add(entry_id.text)
        title = exactly_one(entry, "title", where, problems)
        if title is not None:
            check_text(title, f"{where} title", problems)
        updated = exactly_one(entry, "updated", where, problems)
        if updated is not None:
            check_date(updated, f"{where} updated", problems)
        for name in ["published", "summary", "content", "rights", "source"]:
            at_most_one(entry, name, where, problems)
        for published in children(entry, "published"):
            check_date(published, f"{where} published", problems)
        for name in ["summary", "content"]:
            for text in children(entry, name):
                check_text(text, f"{where} {name}", problems)
        alternates = check_links(entry, where, problems)
        if not children(entry, "content") and not alternates:
            problems.append(f"{where}: neither atom:content nor an alternate link")
        if not feed_has_author and not children(entry, "author"):
            problems.append(f"{where}: no author, and the feed has none")
        for category in children(entry, "category"):
            if not category.get("term"):
                problems.append(f"{where}: atom:category without a term")
    return problems


def main():
    failed = False
    for path in sys.argv[1:]:
        for problem in check(path):
            print(f"{path}: {problem}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
