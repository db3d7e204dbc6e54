// What the scripts share: their arguments, their one JSON answer on stdout, polling, and how
// an SDK error is described (its class, as the SDK maps OpenPAI's `code`, and its status).
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

/** Ends the script with what `partial()` says, if it has not ended within `seconds`. */
function limit(seconds, partial) {
  setTimeout(() => finish(EXIT.stuck, {timeout: seconds, ...partial()}), seconds * 1000).unref();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls `read` every 100 ms until `done(answer)`, for at most `seconds`; the last answer. */
async function poll(read, done, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const answer = await read();
    if (done(answer) || Date.now() > deadline) {
      return answer;
    }
    await sleep(100);
  }
}

/** An error thrown by the SDK, described: its class, HTTP status and OpenPAI code. */
function described(e) {
  const response = e.response || {};
  const data = e.data || response.data || e.error;
  return {
    class: e.constructor && e.constructor.name,
    status: e.status || e.statusCode || response.status,
    code: data && typeof data === 'object' ? data.code : undefined,
    message: e.message,
  };
}

/** What `promise` gave, or how it failed (described). */
async function outcome(promise) {
  try {
    return {ok: await promise};
  } catch (e) {
    return {error: described(e)};
  }
}

module.exports = {EXIT, args, finish, limit, poll, described, outcome};
