// sockjs-client alone on pulsar's feed, over one transport, as pulsar's client talks to it.
//
//   node sockjs_transports.js <url> <token> <transport>
//
// `transport` is one of sockjs-client's (websocket, xhr-streaming, xhr-polling, …). Prints one
// JSON line per step: {open: true, transport} once the session is open and the token sent,
// {event, job, transport} for each message of the feed, and {closed: {code, reason}} when the
// session is closed, then exits 0. Runs until closed or its time limit (exit 2); the test stops
// it when it has seen enough.
'use strict';

const SockJS = require('sockjs-client');
const {EXIT, args, finish, say, limit} = require('./common');

const {url, token, transport} = args(['url', 'token', 'transport']);
const sock = new SockJS(url + '/websocket', null, {transports: [transport]});
limit(30, () => ({}));

sock.onopen = () => {
  sock.send(JSON.stringify({token}));
  say({open: true, transport: sock.transport});
};
sock.onmessage = (message) => {
  const {event, job} = JSON.parse(message.data);
  say({event, job, transport: sock.transport});
};
sock.onclose = (close) => finish(EXIT.ok, {closed: {code: close.code, reason: close.reason}});
