// Preloaded (node --require) into the Node servers of scripts/servers so that
// they never ask DNS anything. smtp-server reverse-resolves every client
// address with dns.reverse() unless disableReverseLookup is set, and maildev
// gives no way to set it. Here every resolver call fails at once with
// ENOTFOUND, and lookup() answers only for IP literals and "localhost".
'use strict';

const dns = require('node:dns');
const net = require('node:net');

function refused(name) {
    const err = new Error(`${name}: DNS disabled in this test server`);
    err.code = dns.NOTFOUND;
    return err;
}

function failingCallbackFn(name) {
    return function (...args) {
        const cb = args[args.length - 1];
        if (typeof cb === 'function') process.nextTick(cb, refused(name));
    };
}

function failingPromiseFn(name) {
    return async () => {
        throw refused(name);
    };
}

const RESOLVER_FNS = [
    'reverse', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname',
    'resolveMx', 'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt',
    'lookupService',
];

for (const name of RESOLVER_FNS) {
    if (typeof dns[name] === 'function') dns[name] = failingCallbackFn(name);
    if (dns.promises && typeof dns.promises[name] === 'function') dns.promises[name] = failingPromiseFn(name);
}
for (const cls of [dns.Resolver, dns.promises && dns.promises.Resolver]) {
    if (!cls) continue;
    for (const name of RESOLVER_FNS) {
        if (typeof cls.prototype[name] === 'function') {
            cls.prototype[name] = cls === dns.Resolver ? failingCallbackFn(name) : failingPromiseFn(name);
        }
    }
}

// lookup(): only literals and localhost, answered without any query.
function literal(hostname) {
    if (hostname === 'localhost') return { address: '127.0.0.1', family: 4 };
    const family = net.isIP(hostname || '');
    return family ? { address: hostname, family } : null;
}

const origLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
    if (typeof options === 'function') {
        callback = options;
        options = {};
    }
    const hit = literal(hostname);
    if (!hit) {
        process.nextTick(callback, refused(`lookup ${hostname}`));
        return;
    }
    return origLookup.call(dns, hit.address, options, callback);
};
if (dns.promises) {
    const origPromiseLookup = dns.promises.lookup;
    dns.promises.lookup = async function lookup(hostname, options) {
        const hit = literal(hostname);
        if (!hit) throw refused(`lookup ${hostname}`);
        return origPromiseLookup.call(dns.promises, hit.address, options);
    };
}
