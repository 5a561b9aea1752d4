// The exact text of JSON members, so that values and keys round-trip as the
// service stores them (JSON.parse would turn 1.0 into 1 and round integers
// past 2^53). Input is JSON the service wrote or JSON.parse accepted.

const SPACE = " \t\n\r";

function skipSpace(text, i) {
  while (SPACE.includes(text[i]) && i < text.length) i++;
  return i;
}

function skipString(text, i) {
  for (i++; text[i] !== '"'; i++) if (text[i] === "\\") i++;
  return i + 1;
}

/** The index just past the JSON value that starts at `i`. */
export function skipValue(text, i) {
  const first = text[i];
  if (first === '"') return skipString(text, i);
  if (first !== "{" && first !== "[") {
    while (i < text.length && !",}]".includes(text[i]) && !SPACE.includes(text[i])) i++;
    return i;
  }
  let depth = 0;
  for (;;) {
    const c = text[i];
    if (c === '"') {
      i = skipString(text, i);
      continue;
    }
    if (c === "{" || c === "[") depth++;
    else if ((c === "}" || c === "]") && --depth === 0) return i + 1;
    i++;
  }
}

/** The raw text of each member of the object at `i`, by name. */
export function rawMembers(text, i = skipSpace(text, 0)) {
  const members = {};
  i = skipSpace(text, i + 1);
  while (text[i] !== "}") {
    const nameEnd = skipString(text, i);
    const name = JSON.parse(text.slice(i, nameEnd));
    const start = skipSpace(text, skipSpace(text, nameEnd) + 1); // past the colon
    const end = skipValue(text, start);
    members[name] = text.slice(start, end);
    i = skipSpace(text, end);
    if (text[i] === ",") i = skipSpace(text, i + 1);
  }
  return members;
}

/** The raw text of each element of the array `raw`. */
export function rawElements(raw) {
  const elements = [];
  let i = skipSpace(raw, 1);
  while (raw[i] !== "]") {
    const end = skipValue(raw, i);
    elements.push(raw.slice(i, end));
    i = skipSpace(raw, end);
    if (raw[i] === ",") i = skipSpace(raw, i + 1);
  }
  return elements;
}

/** `raw` (valid JSON) indented by two spaces, every token kept as written. */
export const indentJson = (raw) => reformat(raw, "  ");

/** `raw` (valid JSON) with no space between tokens, every token kept as written. */
export const compactJson = (raw) => reformat(raw, "");

function reformat(raw, indent) {
  let out = "";
  let depth = 0;
  const newline = () => (indent ? `\n${indent.repeat(depth)}` : "");
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === '"') {
      const end = skipString(raw, i);
      out += raw.slice(i, end);
      i = end - 1;
    } else if (c === "{" || c === "[") {
      const next = skipSpace(raw, i + 1);
      if (raw[next] === (c === "{" ? "}" : "]")) {
        out += c + raw[next]; // {} and [] stay on one line
        i = next;
      } else {
        depth++;
        out += c + newline();
      }
    } else if (c === "}" || c === "]") {
      depth--;
      out += newline() + c;
    } else if (c === ",") out += `,${newline()}`;
    else if (c === ":") out += indent ? ": " : ":";
    else if (!SPACE.includes(c)) out += c;
  }
  return out;
}
