// What the scripts share: their arguments, their one JSON answer on stdout and their exit.
// The pulsar client reconnects forever and never lets the process end: every script ends by
// `finish`, or by the time limit.
'use strict';

const EXIT = {ok: 0, failed: 1, stuck: 2};

/** The positional arguments, named; a missing one ends the script with usage. */
function args(names) {
  const given = process.argv.slice(2);
  if (given.length < names.length) {
    process.stderr.write(`usage: node ${process.argv[1]} ${names.map((n) => `<${n}>`).join(' ')}\n`);
    process.exit(EXIT.stuck);
  }
  return Object.fromEntries(names.map((name, i) => [name, given[i]]));
}

/** Prints `result` as one line of JSON and exits with `code`. */
function finish(code, result) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

/** A line of JSON now, the script going on (a step the test waits for). */
function say(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** Ends the script with what `partial()` says, if it has not ended within `seconds`. */
function limit(seconds, partial) {
  setTimeout(() => finish(EXIT.stuck, {timeout: seconds, ...partial()}), seconds * 1000).unref();
}

module.exports = {EXIT, args, finish, say, limit};
