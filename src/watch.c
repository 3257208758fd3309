/* watch.c - context watchers (SPEC 5.4): ENTER/EXIT on every switch of a
 * thread's current context, SET/RESET for variables created with
 * CX_VAR_WATCHED.
 *
 * Registry
 * --------
 * A fixed array of CX__WATCH_MAX slots and one word, cx__watch_mask, whose
 * bit i says "slot i holds a registered watcher". The hooks on the hot
 * paths (watch.h) load only that word. Adding and removing change the
 * registry under `reg_mu`; firing takes no lock: it loads the mask and
 * calls the watchers of its bits. Fixed slots mean that removing never
 * allocates (it cannot fail) and that the memory a reader may still look
 * at (the slot) is never freed. `used` (under reg_mu) has the bits of the
 * slots that are taken: registered, or removed and still draining; a slot
 * is reused only once it has drained.
 *
 * Removal: a grace period (RCU's idea, on two counters)
 * -----------------------------------------------------
 * cx_watch_remove must return only when the callback runs nowhere and will
 * never run again. Every delivery is a read-side section: the firing
 * thread adds itself to readers[epoch & 1] (a locked increment), then
 * loads the mask, calls, and leaves (a locked decrement). A remover
 *   1. clears the watcher's bit in the mask (no new section sees it),
 *   2. flips `epoch` (a locked increment: new sections count in the other
 *      counter, so the one it waits for can only drain),
 *   3. sleeps on a condition variable until readers[old] is 0,
 *   4. then empties the slot and frees the watcher.
 * Why that is enough: a section that can still call the watcher loaded
 * the mask before step 1. It read the epoch before its increment and its
 * mask load after it (the increment is a full barrier). If it read the
 * new epoch, step 1 (before step 2's locked flip) is visible to its mask
 * load: it cannot see the bit. If it read the old epoch, either its
 * increment precedes the remover's load of readers[old] (it is waited
 * for), or it follows that load, hence follows step 1: again it cannot see
 * the bit. Sections that start after the flip count in the other counter,
 * so a thread that keeps switching contexts cannot starve a remover: only
 * the sections that straddle the flip (at most one per thread) are waited
 * for. Grace periods run one at a time (`gp_busy`, under gp_mu).
 *   No lost wake-up: the remover sets gp_busy, flips (locked), then reads
 * readers[old], all under gp_mu, and sleeps in pthread_cond_wait, which
 * releases gp_mu atomically; a section that brings the counter to 0 (a
 * locked decrement) then reads gp_busy and, if set, broadcasts under
 * gp_mu. Either the remover sees 0 or the section sees gp_busy, and its
 * broadcast cannot come between the remover's check and its sleep.
 *
 * No recursion: `in_watch` (thread-local) is set while this thread
 * delivers an event; events caused meanwhile in this thread (a callback
 * that sets a watched variable or runs a context) are dropped. A remove
 * made inside a callback cannot wait for the grace period (it would wait
 * for its own section, and two threads doing so would wait for each
 * other): it clears the bit at once (no section that starts later calls
 * the watcher) and this thread finishes the removal, grace period
 * included, when its section ends, before the library call that fired the
 * event returns to the program.
 *
 * Race detectors: the mask, epoch, counters and gp_busy are only accessed
 * atomically and are hidden from helgrind/DRD (annotate.h); the handoffs
 * they carry are announced: add -> sections (on the mask), sections ->
 * remover (on the counter the remover waited for).
 */
#include <pthread.h>

#include "annotate.h"
#include "context.h"
#include "watch.h"

struct cx_watcher {
    void (*fn)(const cx_watch_event *ev, void *arg);
    void *arg;
    unsigned slot;
    cx_watcher *next; /* in this thread's list of deferred removals */
};

uint64_t cx__watch_mask;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static cx_watcher *slots[CX__WATCH_MAX]; /* under reg_mu; read by sections */
static uint64_t used;                    /* under reg_mu */

static unsigned epoch; /* atomic */
static struct {
    unsigned n; /* atomic: sections counted here still running */
    char pad[64 - sizeof(unsigned)];
} readers[2] __attribute__((aligned(64)));

static pthread_mutex_t gp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gp_cv = PTHREAD_COND_INITIALIZER;
static unsigned gp_busy; /* atomic, written under gp_mu: a grace period runs */

static __thread unsigned in_watch __attribute__((tls_model("initial-exec")));
static __thread cx_watcher *deferred __attribute__((tls_model("initial-exec")));

/* The words above that only atomics touch (see the file comment). */
__attribute__((constructor)) static void hide_words(void)
{
    CX__CK_UNTRACKED(&cx__watch_mask, sizeof(cx__watch_mask));
    CX__CK_UNTRACKED(&epoch, sizeof(epoch));
    CX__CK_UNTRACKED(&readers, sizeof(readers));
    CX__CK_UNTRACKED(&gp_busy, sizeof(gp_busy));
}

/* ----------------------------------------------------------- grace period */

/* Waits until every section that may have seen a bit cleared before the
 * call has ended. Not a cancellation point: a cancelled wait would leave
 * gp_busy set forever. */
static void synchronize(void)
{
    int old_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
    pthread_mutex_lock(&gp_mu);
    while (ck_pr_load_uint(&gp_busy) != 0)
        pthread_cond_wait(&gp_cv, &gp_mu);
    ck_pr_store_uint(&gp_busy, 1);
    /* The mask update (made before the call) and the gp_busy store come
     * before the flip, the flip before the load of the counter. */
    ck_pr_fence_store_atomic();
    unsigned old = ck_pr_faa_uint(&epoch, 1) & 1u;
    ck_pr_fence_atomic_load();
    while (ck_pr_load_uint(&readers[old].n) != 0)
        pthread_cond_wait(&gp_cv, &gp_mu);
    /* Pairs with the release before each section's decrement: what the
     * callbacks did happens before the caller frees the watcher. */
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(&readers[old]);
    ck_pr_store_uint(&gp_busy, 0);
    pthread_cond_broadcast(&gp_cv); /* the next grace period may start */
    pthread_mutex_unlock(&gp_mu);
    pthread_setcancelstate(old_state, NULL);
}

/* Frees a list of watchers whose bits are clear: after a grace period,
 * their slots may be reused. */
static void finish_removals(cx_watcher *list)
{
    synchronize();
    pthread_mutex_lock(&reg_mu);
    for (cx_watcher *w = list; w != NULL; w = w->next) {
        slots[w->slot] = NULL;
        used &= ~(UINT64_C(1) << w->slot);
    }
    pthread_mutex_unlock(&reg_mu);
    while (list != NULL) {
        cx_watcher *next = list->next;
        cx__free(list);
        list = next;
    }
}

/* ------------------------------------------------------------- delivering */

struct section {
    unsigned idx; /* the counter this section is counted in */
};

static struct section section_begin(void)
{
    struct section s = {.idx = ck_pr_load_uint(&epoch) & 1u};
    ck_pr_inc_uint(&readers[s.idx].n);
    /* The mask is loaded after the increment (the caller's load follows
     * this barrier; a no-op on x86, where the increment is locked). */
    ck_pr_fence_atomic_load();
    return s;
}

/* Ends the section on every way out of the callbacks (return, and the
 * unwinding of pthread_exit, cancellation or a C++ exception). */
static void section_end(struct section *s)
{
    bool zero;
    /* The callbacks' accesses happen before a remover's free. */
    CX__HAPPENS_BEFORE(&readers[s->idx]);
    ck_pr_fence_release();
    ck_pr_dec_uint_zero(&readers[s->idx].n, &zero);
    /* The load below cannot pass the decrement (see the file comment, "No
     * lost wake-up"). */
    ck_pr_fence_atomic_load();
    if (zero && ck_pr_load_uint(&gp_busy) != 0) {
        pthread_mutex_lock(&gp_mu);
        pthread_cond_broadcast(&gp_cv);
        pthread_mutex_unlock(&gp_mu);
    }
    in_watch = 0;
    if (__builtin_expect(deferred != NULL, 0)) {
        cx_watcher *list = deferred;
        deferred = NULL;
        finish_removals(list);
    }
}

void cx__watch_fire(const cx_watch_event *ev)
{
    if (in_watch)
        return; /* caused by a callback in this thread: not delivered */
    in_watch = 1;
    struct section s __attribute__((cleanup(section_end), unused)) = section_begin();
    uint64_t m = ck_pr_load_64(&cx__watch_mask);
    /* Pairs with the release in cx_watch_add: the slots of the bits we
     * see, and the watchers in them, are initialised. */
    ck_pr_fence_acquire();
    CX__HAPPENS_AFTER(&cx__watch_mask);
    while (m != 0) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        /* Valid: the slot is emptied only after a grace period that waits
         * for this section. */
        const cx_watcher *w = ck_pr_load_ptr(&slots[i]);
        w->fn(ev, w->arg);
    }
}

void cx__watch_switch(int kind, const cx_context *ctx)
{
    cx_watch_event ev = {.kind = kind, .ctx = ctx, .var = NULL, .old_value = NULL,
                         .new_value = NULL, .had_old = false, .has_new = false};
    cx__watch_fire(&ev);
}

/* ------------------------------------------------------------ public API */

int cx_watch_add(cx_watcher **out, void (*fn)(const cx_watch_event *ev, void *arg), void *arg)
{
    if (out == NULL || fn == NULL)
        return CX_EINVAL;
    cx_watcher *w = cx__malloc(sizeof(*w));
    if (w == NULL)
        return CX_ENOMEM;
    w->fn = fn;
    w->arg = arg;
    w->next = NULL;
    pthread_mutex_lock(&reg_mu);
    uint64_t free_slots = ~used;
    if (free_slots == 0) {
        pthread_mutex_unlock(&reg_mu);
        cx__free(w);
        return CX_EAGAIN;
    }
    w->slot = (unsigned)__builtin_ctzll(free_slots);
    used |= UINT64_C(1) << w->slot;
    ck_pr_store_ptr(&slots[w->slot], w);
    /* The watcher and its slot are written before the bit is seen. */
    CX__HAPPENS_BEFORE(&cx__watch_mask);
    ck_pr_fence_release();
    ck_pr_store_64(&cx__watch_mask, ck_pr_load_64(&cx__watch_mask) | (UINT64_C(1) << w->slot));
    pthread_mutex_unlock(&reg_mu);
    *out = w;
    return 0;
}

void cx_watch_remove(cx_watcher *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&reg_mu);
    ck_pr_store_64(&cx__watch_mask, ck_pr_load_64(&cx__watch_mask) & ~(UINT64_C(1) << w->slot));
    pthread_mutex_unlock(&reg_mu);
    if (in_watch) {
        /* Inside a callback of this thread: finished when its section
         * ends (see the file comment). */
        w->next = deferred;
        deferred = w;
        return;
    }
    w->next = NULL;
    finish_removals(w);
}
