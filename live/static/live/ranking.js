// The ranking rule, the same as the server's (live/delivery/frames.py), for every page module.

// The server sorts names by code point (Python's str order), not by UTF-16 unit. The two
// orders differ only where a surrogate pair meets a character above U+D7FF, so compare
// units up to the first difference and decide that one by its code point.
export function compareCodePoints(a, b) {
  const length = Math.min(a.length, b.length);
  let i = 0;
  while (i < length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === length) return a.length - b.length;
  return a.codePointAt(i) - b.codePointAt(i);
}

// Score descending, then name.
export function byRank(a, b) {
  return b.score - a.score || compareCodePoints(a.name, b.name);
}
