//! memcached 1.6.18's meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`), from its
//! `proto_text.c`: flags are parsed by `_meta_flag_preparse`, and each command
//! builds its status line in one buffer, as memcached does, so that an error met
//! half-way (an over-long opaque) replaces it.

use super::{
    error, out_string, Connection, Flow, PendingData, StackLine, State, Tokens, KEY_MAX_LENGTH,
};
use crate::cnum;
use crate::output::Output;
use crate::store::{
    Exptime, MetaDelta, MetaStore, NewItem, Store, StoreMode, StoreOutcome, META_KEY_BINARY,
    META_STALE, META_TOKEN_SENT,
};
use std::sync::Arc;

/// memcached's `MFLAG_MAX_OPT_LENGTH`: at most this many tokens (with the terminal
/// one) on a meta command line.
const MAX_OPT_LENGTH: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`.
const MAX_OPAQUE_LENGTH: usize = 32;

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format";

/// memcached's `struct _meta_flags`.
#[derive(Default)]
struct Flags {
    has_error: bool,
    no_update: bool,
    vivify: bool,
    value: bool,
    set_stale: bool,
    no_reply: bool,
    has_cas: bool,
    new_ttl: bool,
    key_binary: bool,
    mode: u8,
    exptime: Option<Exptime>,
    autoviv_exptime: Option<Exptime>,
    recache_time: Option<Exptime>,
    client_flags: u32,
    req_cas_id: u64,
    delta: u64,
    initial: u64,
}

/// The key token, base64-decoded by the `b` flag.
struct Key<'a> {
    token: &'a [u8],
    buf: [u8; 256],
    /// `Some(len)` once decoded (0: the decoding failed).
    decoded: Option<usize>,
}

impl<'a> Key<'a> {
    fn new(token: &'a [u8]) -> Key<'a> {
        Key {
            token,
            buf: [0; 256],
            decoded: None,
        }
    }

    fn get(&self) -> &[u8] {
        match self.decoded {
            Some(n) => &self.buf[..n],
            None => self.token,
        }
    }
}

/// `Exptime` from a protocol value, as memcached's
/// `realtime(EXPTIME_TO_POSITIVE_TIME(v))`.
fn flag_exptime(store: &Store, v: &[u8]) -> Option<Exptime> {
    cnum::safe_strtol(v).map(|e| store.exptime(e))
}

/// memcached's `_meta_flag_preparse`: `Err` with the error string (memcached's
/// `errstr` when it returns -1).
fn preparse(
    t: &Tokens<'_>,
    start: usize,
    key: &mut Key<'_>,
    store: &Store,
    errstr: &mut &'static [u8],
) -> Result<Flags, ()> {
    let mut of = Flags::default();
    let mut seen = [false; 127];
    for i in start..t.count {
        let tok = t.get(i);
        let o = tok[0];
        if o >= 127 || seen[usize::from(o)] {
            *errstr = b"CLIENT_ERROR duplicate flag";
            return Err(());
        }
        seen[usize::from(o)] = true;
        let arg = &tok[1..];
        match o {
            b'b' => {
                let n = base64_decode(key.token, &mut key.buf);
                if n == 0 {
                    *errstr = b"CLIENT_ERROR error decoding key";
                    of.has_error = true;
                }
                key.decoded = Some(n);
                of.key_binary = true;
            }
            b'N' | b'T' | b'R' => {
                if o == b'N' {
                    of.vivify = true;
                }
                match flag_exptime(store, arg) {
                    None => {
                        *errstr = b"CLIENT_ERROR bad token in command line format";
                        of.has_error = true;
                    }
                    Some(e) => match o {
                        b'N' => {
                            of.vivify = true;
                            of.autoviv_exptime = Some(e);
                        }
                        b'T' => {
                            of.exptime = Some(e);
                            of.new_ttl = true;
                        }
                        _ => of.recache_time = Some(e),
                    },
                }
            }
            // memcached locks the item for these (to bump it after reading it); the
            // engine reads before it bumps anyway.
            b'l' | b'h' | b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' => {}
            b'v' => of.value = true,
            b'u' => of.no_update = true,
            b'q' => of.no_reply = true,
            b'F' => match cnum::safe_strtoul(arg) {
                Some(f) => of.client_flags = f,
                None => of.has_error = true,
            },
            b'C' => match cnum::safe_strtoull(arg) {
                Some(c) => {
                    of.req_cas_id = c;
                    of.has_cas = true;
                }
                None => {
                    *errstr = b"CLIENT_ERROR bad token in command line format";
                    of.has_error = true;
                }
            },
            b'M' => {
                if tok.len() != 2 {
                    *errstr = b"CLIENT_ERROR incorrect length for M token";
                    of.has_error = true;
                } else {
                    of.mode = tok[1];
                }
            }
            b'J' => match cnum::safe_strtoull(arg) {
                Some(v) => of.initial = v,
                None => {
                    *errstr = b"CLIENT_ERROR invalid numeric initial value";
                    of.has_error = true;
                }
            },
            b'D' => match cnum::safe_strtoull(arg) {
                Some(v) => of.delta = v,
                None => {
                    *errstr = b"CLIENT_ERROR invalid numeric delta value";
                    of.has_error = true;
                }
            },
            b'I' => of.set_stale = true,
            _ => {
                *errstr = b"CLIENT_ERROR invalid flag";
                return Err(());
            }
        }
    }
    if of.has_error {
        Err(())
    } else {
        Ok(of)
    }
}

/// A status line built on the stack (memcached's write buffer).
type MetaLine = StackLine<1024>;

impl StackLine<1024> {
    /// memcached's `META_CHAR`.
    fn flag(&mut self, c: u8) {
        self.put(&[b' ', c]);
    }

    /// memcached's `META_KEY`.
    fn key(&mut self, key: &[u8], binary: bool) {
        self.flag(b'k');
        if binary {
            let n = base64_encode(key, &mut self.buf[self.len..]);
            self.len += n;
            self.put(b" b");
        } else {
            self.put(key);
        }
    }

    /// An opaque token: `false` if it is too long.
    fn opaque(&mut self, tok: &[u8]) -> bool {
        if tok.len() > MAX_OPAQUE_LENGTH {
            return false;
        }
        self.put(b" ");
        self.put(tok);
        true
    }

    fn ttl(&mut self, store: &Store, e: Exptime) {
        self.flag(b't');
        match store.meta_ttl(e) {
            None => self.put(b"-1"),
            Some(t) => self.num(u64::from(t)),
        }
    }
}

/// The checks `mg`, `md` and `ma` open with, in memcached's order: the reply if one
/// fails. `too_long` is the command's own wording (memcached's `mg` says "are too long").
fn opening_checks(
    t: &Tokens<'_>,
    ntokens: usize,
    out: &mut dyn Output,
    too_long: &'static [u8],
) -> Option<Flow> {
    if ntokens < 3 {
        return Some(error(out));
    }
    if t.get(1).len() > KEY_MAX_LENGTH {
        return Some(errstring(out, BAD_FORMAT));
    }
    if ntokens > MAX_OPT_LENGTH {
        return Some(errstring(out, too_long));
    }
    None
}

/// memcached's `out_errstring`: shown even with `q`.
fn errstring(out: &mut dyn Output, s: &[u8]) -> Flow {
    out_string(out, false, s)
}

/// `O` and `k` on a miss (and `md`, `ma` without an item): `false` for a too long
/// opaque.
fn opaque_and_key(t: &Tokens<'_>, l: &mut MetaLine, key: &[u8], binary: bool) -> bool {
    for i in 2..t.count {
        let tok = t.get(i);
        match tok[0] {
            b'O' if !l.opaque(tok) => return false,
            b'k' => l.key(key, binary),
            _ => {}
        }
    }
    true
}

impl Connection {
    /// Whether an `mg` reply memcached has not written yet refers to `key`'s item
    /// (memcached then makes a new item for `incr`/`decr`/`ma` instead of writing in
    /// place).
    pub(super) fn held(&self, store: &Store, key: &[u8]) -> bool {
        !self.held.is_empty()
            && store
                .meta_peek(key)
                .is_some_and(|d| self.held.iter().any(|h| Arc::ptr_eq(h, d)))
    }

    /// memcached's `process_mget_command`.
    pub(super) fn process_mg(
        &mut self,
        t: &Tokens<'_>,
        ntokens: usize,
        out: &mut dyn Output,
        store: &mut Store,
    ) -> Flow {
        if let Some(refused) =
            opening_checks(t, ntokens, out, b"CLIENT_ERROR options flags are too long")
        {
            return refused;
        }
        let mut errstr: &'static [u8] = BAD_FORMAT;
        let mut key = Key::new(t.get(1));
        let Ok(of) = preparse(t, 2, &mut key, store, &mut errstr) else {
            return errstring(out, errstr);
        };
        let key = key.get();
        let mut created = false;
        let mut found = store.meta_lookup(key);
        if found.is_none() && of.vivify {
            found = Some(store.meta_vivify(key));
            created = true;
        }
        let mut l = MetaLine::new();
        let Some(i) = found else {
            store.stats.cmd_get += 1;
            store.stats.get_misses += 1;
            l.put(b"EN");
            if !opaque_and_key(t, &mut l, key, of.key_binary) {
                return errstring(out, b"CLIENT_ERROR opaque token too long");
            }
            l.put(b"\r\n");
            if !of.no_reply {
                out.put(l.bytes());
            }
            return Flow::Next;
        };
        let mut won = false;
        let mut ttl_set = false;
        {
            let it = store.meta_view(i);
            if of.value {
                l.put(b"VA ");
                l.num(it.value.len() as u64);
            } else {
                l.put(b"HD");
            }
        }
        for n in 2..t.count {
            let tok = t.get(n);
            let info = store.meta_info(i);
            match tok[0] {
                b'T' => {
                    ttl_set = true;
                    store.meta_set_exptime(i, of.exptime.unwrap_or(Exptime::NEVER));
                }
                b'N' if created => {
                    store.meta_set_exptime(i, of.autoviv_exptime.unwrap_or(Exptime::NEVER));
                    won = true;
                }
                b'R' => {
                    let below = match (info.exptime.unix(), of.recache_time.and_then(|r| r.unix()))
                    {
                        (Some(e), Some(r)) => e < r,
                        _ => false,
                    };
                    if info.bits & META_TOKEN_SENT == 0 && !created && below {
                        won = true;
                    }
                }
                b's' => {
                    l.flag(b's');
                    l.num(store.meta_view(i).value.len() as u64);
                }
                b't' => l.ttl(store, info.exptime),
                b'c' => {
                    l.flag(b'c');
                    l.num(store.meta_view(i).cas);
                }
                b'f' => {
                    l.flag(b'f');
                    l.num(u64::from(store.meta_view(i).flags));
                }
                b'l' => {
                    l.flag(b'l');
                    l.num(u64::from(store.now().wrapping_sub(info.time) as u32));
                }
                b'h' => {
                    l.flag(b'h');
                    l.put(if info.fetched { b"1" } else { b"0" });
                }
                b'O' if !l.opaque(tok) => {
                    return errstring(out, b"CLIENT_ERROR opaque token too long")
                }
                b'k' => {
                    let it = store.meta_view(i);
                    l.key(it.key, info.bits & META_KEY_BINARY != 0);
                }
                _ => {}
            }
        }
        let mut bits = store.meta_info(i).bits;
        if bits & META_TOKEN_SENT != 0 {
            l.flag(b'Z');
        }
        if bits & META_STALE != 0 {
            l.flag(b'X');
            if bits & META_TOKEN_SENT == 0 {
                won = true;
            }
        }
        if won {
            l.flag(b'W');
            bits |= META_TOKEN_SENT;
            store.meta_set_bits(i, bits);
        }
        l.put(b"\r\n");
        out.put(l.bytes());
        if of.value {
            out.put_value(&store.meta_view(i));
        }
        // The reply holds the item until it is written.
        self.held.push(Arc::clone(store.meta_data(i)));
        if !of.no_update {
            store.meta_bump(i);
        }
        store.meta_count_hit(i, ttl_set);
        Flow::Next
    }

    /// memcached's `process_mset_command`: the data block follows.
    pub(super) fn process_ms(
        &mut self,
        t: &Tokens<'_>,
        ntokens: usize,
        out: &mut dyn Output,
        store: &mut Store,
    ) -> Flow {
        if ntokens < 3 {
            return error(out);
        }
        if t.get(1).len() > KEY_MAX_LENGTH || ntokens == 3 {
            return errstring(out, BAD_FORMAT);
        }
        if ntokens > MAX_OPT_LENGTH {
            return errstring(out, b"CLIENT_ERROR options flags too long");
        }
        let Some(vlen) = cnum::safe_strtol(t.get(2)) else {
            return errstring(out, BAD_FORMAT);
        };
        if !(0..=i32::MAX - 2).contains(&vlen) {
            return errstring(out, BAD_FORMAT);
        }
        let vlen = vlen as usize;
        let mut errstr: &'static [u8] = BAD_FORMAT;
        let swallow = |out: &mut dyn Output, conn: &mut Connection, errstr: &[u8]| {
            errstring(out, errstr);
            conn.state = State::Swallow(vlen + 2);
            Flow::Block
        };
        let mut key = Key::new(t.get(1));
        let Ok(of) = preparse(t, 3, &mut key, store, &mut errstr) else {
            return swallow(out, self, errstr);
        };
        let key = key.get();
        self.meta_stash.clear();
        let mut has_error = false;
        for i in 2..t.count {
            let tok = t.get(i);
            match tok[0] {
                b'O' => {
                    if tok.len() > MAX_OPAQUE_LENGTH {
                        errstr = b"CLIENT_ERROR opaque token too long";
                        has_error = true;
                    } else {
                        self.meta_stash.push(b' ');
                        self.meta_stash.extend_from_slice(tok);
                    }
                }
                b'k' => self.meta_stash.extend_from_slice(b" k"),
                b'c' => self.meta_stash.extend_from_slice(b" c"),
                _ => {}
            }
        }
        let mut comm = match of.mode {
            0 | b'S' => MetaStore::Set,
            b'E' => MetaStore::Add,
            b'A' => MetaStore::Append,
            b'P' => MetaStore::Prepend,
            b'R' => MetaStore::Replace,
            _ => return swallow(out, self, b"CLIENT_ERROR invalid mode for ms M token"),
        };
        if of.has_cas && matches!(comm, MetaStore::Set | MetaStore::Replace) {
            comm = MetaStore::Cas;
        }
        if has_error {
            return swallow(out, self, errstr);
        }
        let size = Store::item_size(key.len(), of.client_flags, vlen);
        let refused: &'static [u8] = if size > store.config().item_size_max {
            store.stats.store_too_large += 1;
            b"SERVER_ERROR object too large for cache"
        } else if size as u64 > store.config().memory_limit {
            store.count_no_memory(size);
            b"SERVER_ERROR out of memory storing object"
        } else {
            b""
        };
        if !refused.is_empty() {
            // "Avoid stale data persisting in cache because we failed alloc."
            store.remove_after_failed_set(key);
            return swallow(out, self, refused);
        }
        let exptime = of.exptime.unwrap_or(Exptime::NEVER);
        self.state = State::Data(PendingData {
            mode: StoreMode::Set,
            item: NewItem::with_capacity(key, vlen, of.client_flags, exptime),
            value_left: vlen,
            trailer: [0; 2],
            trailer_len: 0,
            noreply: of.no_reply,
            meta: Some(MetaPending {
                comm,
                req_cas: of.req_cas_id,
                set_stale: of.set_stale && comm == MetaStore::Cas,
                key_binary: of.key_binary,
            }),
        });
        Flow::Block
    }

    /// memcached's `process_mdelete_command`.
    pub(super) fn process_md(
        &mut self,
        t: &Tokens<'_>,
        ntokens: usize,
        out: &mut dyn Output,
        store: &mut Store,
    ) -> Flow {
        if let Some(refused) =
            opening_checks(t, ntokens, out, b"CLIENT_ERROR options flags too long")
        {
            return refused;
        }
        let mut errstr: &'static [u8] = BAD_FORMAT;
        let mut key = Key::new(t.get(1));
        let Ok(of) = preparse(t, 2, &mut key, store, &mut errstr) else {
            return errstring(out, b"CLIENT_ERROR invalid or duplicate flag");
        };
        let key = key.get();
        let mut l = MetaLine::new();
        l.put(b"  ");
        if !opaque_and_key(t, &mut l, key, of.key_binary) {
            return errstring(out, b"CLIENT_ERROR opaque token too long");
        }
        let mut skip = false;
        match store.meta_lookup(key) {
            Some(i) => {
                if of.has_cas && store.meta_view(i).cas != of.req_cas_id {
                    store.stats.delete_misses += 1;
                    l.buf[..2].copy_from_slice(b"EX");
                } else if of.set_stale {
                    if of.new_ttl {
                        store.meta_set_exptime(i, of.exptime.unwrap_or(Exptime::NEVER));
                    }
                    let bits = (store.meta_info(i).bits | META_STALE) & !META_TOKEN_SENT;
                    store.meta_set_bits(i, bits);
                    store.meta_new_cas(i);
                    skip = of.no_reply;
                    l.buf[..2].copy_from_slice(b"HD");
                } else {
                    store.meta_unlink(i);
                    skip = of.no_reply;
                    l.buf[..2].copy_from_slice(b"HD");
                }
            }
            None => {
                store.stats.delete_misses += 1;
                l.buf[..2].copy_from_slice(b"NF");
            }
        }
        l.put(b"\r\n");
        if !skip {
            out.put(l.bytes());
        }
        Flow::Next
    }

    /// memcached's `process_marithmetic_command`.
    pub(super) fn process_ma(
        &mut self,
        t: &Tokens<'_>,
        ntokens: usize,
        out: &mut dyn Output,
        store: &mut Store,
    ) -> Flow {
        if let Some(refused) =
            opening_checks(t, ntokens, out, b"CLIENT_ERROR options flags too long")
        {
            return refused;
        }
        let mut errstr: &'static [u8] = BAD_FORMAT;
        let mut key = Key::new(t.get(1));
        let of = match preparse(t, 2, &mut key, store, &mut errstr) {
            Ok(mut of) => {
                if !t_has(t, b'D') {
                    of.delta = 1;
                }
                of
            }
            Err(()) => return errstring(out, b"CLIENT_ERROR invalid or duplicate flag"),
        };
        let key = key.get();
        let incr = match of.mode {
            0 | b'I' | b'+' => true,
            b'D' | b'-' => false,
            _ => return errstring(out, b"CLIENT_ERROR invalid mode for ma M token"),
        };
        let held = self.held(store, key);
        let mut l = MetaLine::new();
        let mut skip = false;
        let mut created = false;
        // The item to report on, the value, and whether `T` reaches the stored item.
        let mut item: Option<(u32, u64, bool)> = None;
        match store.meta_delta(key, incr, of.delta, of.req_cas_id, held) {
            MetaDelta::Value(v, i, in_place) => {
                skip = of.no_reply;
                item = Some((i, v, in_place));
            }
            MetaDelta::NonNumeric => {
                return errstring(
                    out,
                    b"CLIENT_ERROR cannot increment or decrement non-numeric value",
                )
            }
            MetaDelta::NotFound => {
                if of.vivify {
                    let (d, s) = cnum::u64_digits(of.initial);
                    let new = NewItem::new(key, &d[s..], 0, Exptime::NEVER);
                    let (outcome, i) = store.meta_store(MetaStore::Add, new, 0, false, false);
                    if outcome == StoreOutcome::Stored {
                        created = true;
                        item = Some((i, of.initial, true));
                    } else {
                        l.put(b"NS");
                    }
                } else {
                    if incr {
                        store.stats.incr_misses += 1;
                    } else {
                        store.stats.decr_misses += 1;
                    }
                    l.put(b"NF");
                }
            }
            MetaDelta::CasMismatch => l.put(b"EX"),
        }
        match item {
            Some((i, v, in_place)) => {
                let (d, s) = cnum::u64_digits(v);
                let digits = &d[s..];
                if of.value {
                    l.put(b"VA ");
                    l.num(digits.len() as u64);
                } else {
                    l.put(b"HD");
                }
                // Without `in_place`, memcached goes on with the old, unlinked item:
                // same CAS (set to the new one's) and expiry, but `T` is lost.
                let mut exptime = store.meta_info(i).exptime;
                for n in 2..t.count {
                    let tok = t.get(n);
                    match tok[0] {
                        b'c' => {
                            l.flag(b'c');
                            l.num(store.meta_view(i).cas);
                        }
                        b't' => l.ttl(store, exptime),
                        b'T' => {
                            exptime = of.exptime.unwrap_or(Exptime::NEVER);
                            if in_place {
                                store.meta_set_exptime(i, exptime);
                            }
                        }
                        b'N' if created => {
                            exptime = of.autoviv_exptime.unwrap_or(Exptime::NEVER);
                            store.meta_set_exptime(i, exptime);
                        }
                        b'O' if !l.opaque(tok) => {
                            return errstring(out, b"CLIENT_ERROR opaque token too long")
                        }
                        b'k' => l.key(key, of.key_binary),
                        _ => {}
                    }
                }
                if of.value {
                    l.put(b"\r\n");
                    l.put(digits);
                }
            }
            None => {
                if !opaque_and_key(t, &mut l, key, of.key_binary) {
                    return errstring(out, b"CLIENT_ERROR opaque token too long");
                }
            }
        }
        l.put(b"\r\n");
        if !skip {
            out.put(l.bytes());
        }
        Flow::Next
    }
}

impl Connection {
    /// memcached's `process_meta_command` (`me`): an item's metadata, for debugging.
    pub(super) fn process_me(
        &mut self,
        t: &Tokens<'_>,
        ntokens: usize,
        out: &mut dyn Output,
        store: &mut Store,
    ) -> Flow {
        if ntokens < 3 || t.get(1).len() > KEY_MAX_LENGTH {
            return errstring(out, BAD_FORMAT);
        }
        let mut key = Key::new(t.get(1));
        if ntokens >= 4 && t.get(2) == b"b" {
            let n = base64_decode(key.token, &mut key.buf);
            if n == 0 {
                return errstring(out, BAD_FORMAT);
            }
            key.decoded = Some(n);
        }
        let key = key.get();
        match store.meta_lookup(key) {
            Some(i) => {
                let info = store.meta_info(i);
                let it = store.meta_view(i);
                let mut l = MetaLine::new();
                l.put(b"ME ");
                if info.bits & META_KEY_BINARY != 0 {
                    let n = base64_encode(it.key, &mut l.buf[l.len..]);
                    l.len += n;
                } else {
                    l.put(it.key);
                }
                l.put(b" exp=");
                let exp = store.meta_exp_age(info.exptime);
                if exp < 0 {
                    l.put(b"-");
                }
                l.num(u64::from(exp.unsigned_abs()));
                l.put(b" la=");
                l.num(u64::from(store.meta_age(info.time)));
                l.put(b" cas=");
                l.num(it.cas);
                l.put(if info.fetched {
                    b" fetch=yes cls="
                } else {
                    b" fetch=no cls="
                });
                let size = Store::item_size(it.key.len(), it.flags, it.value.len());
                l.num(crate::slabs::class_of(size) as u64);
                l.put(b" size=");
                l.num(size as u64);
                l.put(b"\r\n");
                out.put(l.bytes());
            }
            None => {
                out.put(b"EN\r\n");
            }
        }
        store.stats.meta_cmds += 1;
        Flow::Next
    }
}

/// Whether a flag token starting with `c` is among the flags.
fn t_has(t: &Tokens<'_>, c: u8) -> bool {
    (2..t.count).any(|i| t.get(i)[0] == c)
}

/// What an `ms` needs once its data block is read.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetaPending {
    comm: MetaStore,
    req_cas: u64,
    set_stale: bool,
    key_binary: bool,
}

/// memcached's `complete_nread_ascii` and `_finalize_mset` for `ms`; `stash` is
/// what `process_ms` noted of the flags (opaque tokens, ` k`, ` c`).
pub(super) fn complete_ms(
    pd: PendingData,
    m: MetaPending,
    stash: &[u8],
    out: &mut dyn Output,
    store: &mut Store,
) {
    let valid = pd.trailer == *b"\r\n";
    store.count_set(&pd.item, valid);
    if !valid {
        errstring(out, b"CLIENT_ERROR bad data chunk");
        return;
    }
    let mut key = [0u8; 256];
    let klen = pd.item.key().len();
    key[..klen].copy_from_slice(pd.item.key());
    let key = &key[..klen];
    let (outcome, i) = store.meta_store(m.comm, pd.item, m.req_cas, m.set_stale, m.key_binary);
    let mut l = MetaLine::new();
    let mut skip = false;
    l.put(match outcome {
        StoreOutcome::Stored => {
            skip = pd.noreply;
            b"HD"
        }
        StoreOutcome::Exists => b"EX",
        StoreOutcome::NotFound => b"NF",
        StoreOutcome::NotStored => b"NS",
    });
    let mut f = 0;
    while f < stash.len() {
        match stash[f] {
            b'O' => {
                l.put(b" ");
                while f < stash.len() && stash[f] != b' ' {
                    l.put(&stash[f..f + 1]);
                    f += 1;
                }
            }
            b'k' => l.key(key, m.key_binary),
            b'c' => {
                l.flag(b'c');
                l.num(if outcome == StoreOutcome::Stored {
                    store.meta_view(i).cas
                } else {
                    0
                });
            }
            _ => {}
        }
        f += 1;
    }
    l.put(b"\r\n");
    if !skip {
        out.put(l.bytes());
    }
}

const BASE64_TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// memcached's `base64_encode` (with `=` padding); the length written.
fn base64_encode(src: &[u8], out: &mut [u8]) -> usize {
    let mut p = 0;
    let mut chunks = src.chunks_exact(3);
    for c in &mut chunks {
        out[p] = BASE64_TABLE[usize::from(c[0] >> 2)];
        out[p + 1] = BASE64_TABLE[usize::from(((c[0] & 0x03) << 4) | (c[1] >> 4))];
        out[p + 2] = BASE64_TABLE[usize::from(((c[1] & 0x0f) << 2) | (c[2] >> 6))];
        out[p + 3] = BASE64_TABLE[usize::from(c[2] & 0x3f)];
        p += 4;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        out[p] = BASE64_TABLE[usize::from(rest[0] >> 2)];
        if rest.len() == 1 {
            out[p + 1] = BASE64_TABLE[usize::from((rest[0] & 0x03) << 4)];
            out[p + 2] = b'=';
        } else {
            out[p + 1] = BASE64_TABLE[usize::from(((rest[0] & 0x03) << 4) | (rest[1] >> 4))];
            out[p + 2] = BASE64_TABLE[usize::from((rest[1] & 0x0f) << 2)];
        }
        out[p + 3] = b'=';
        p += 4;
    }
    p
}

/// memcached's `dtable`: the value of a base64 character, 0x80 for the others (`=`
/// is 0).
fn base64_value(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        b'=' => 0,
        _ => 0x80,
    }
}

/// memcached's `base64_decode`: characters outside the alphabet are skipped; 0 when
/// the count is not a multiple of 4 or the padding is invalid.
fn base64_decode(src: &[u8], out: &mut [u8]) -> usize {
    let count = src.iter().filter(|&&c| base64_value(c) != 0x80).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return 0;
    }
    let mut pos = 0;
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let v = base64_value(c);
        if v == 0x80 {
            continue;
        }
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return 0,
                }
                break;
            }
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        let mut enc = [0u8; 64];
        let mut dec = [0u8; 64];
        for s in [&b"a"[..], b"ab", b"abc", b"abcd", b"\x00\xff key"] {
            let n = base64_encode(s, &mut enc);
            let m = base64_decode(&enc[..n], &mut dec);
            assert_eq!(&dec[..m], s);
        }
        assert_eq!(base64_decode(b"Zm9v", &mut dec), 3);
        assert_eq!(base64_decode(b"Zm9", &mut dec), 0);
        assert_eq!(base64_decode(b"Z===", &mut dec), 0);
    }
}
