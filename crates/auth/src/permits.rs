//! A counting semaphore for blocking threads that admits waiters in arrival order, and keeps
//! the holders' reusable resources for each other while anyone is busy.
//!
//! Password hashing runs on the HTTP server's blocking pool (it is synchronous and takes
//! ~30 ms of a core and 19 MiB), so a bound on how many hashes run at once is a blocking wait,
//! and the standard library has no semaphore. Arrival order matters: under a burst of logins a
//! plain condition variable may pass one waiter over again and again, and its request times
//! out while later ones are served.
//!
//! The resource is the hash's working memory: fresh memory costs page faults, so a holder that
//! finishes while others hold or wait leaves its memory for the next one; the last one to
//! finish gives all of it back, so nothing is kept while nobody is hashing. Deciding that and
//! releasing the permit happen under one lock, so two holders finishing together cannot both
//! think the other one is still busy.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// At most `limit` holders at once; the rest wait their turn, first come first served.
#[derive(Debug)]
pub(crate) struct Permits<R> {
    limit: usize,
    queue: Mutex<Queue<R>>,
    changed: Condvar,
}

#[derive(Debug)]
struct Queue<R> {
    /// The ticket the next arrival draws.
    next_ticket: u64,
    /// The ticket whose turn it is: every lower ticket was admitted.
    next_admitted: u64,
    /// Permits held now.
    held: usize,
    /// Resources left by holders that finished while others were busy (at most `limit`).
    spare: Vec<R>,
}

/// A held permit; [`finish`](Self::finish) or dropping it lets the next waiter in.
#[derive(Debug)]
pub(crate) struct Permit<'a, R> {
    permits: &'a Permits<R>,
    released: bool,
}

impl<R> Permits<R> {
    /// `limit` is at least 1 (0 would block every caller forever).
    pub(crate) fn new(limit: usize) -> Self {
        let queue = Queue { next_ticket: 0, next_admitted: 0, held: 0, spare: Vec::new() };
        Self { limit: limit.max(1), queue: Mutex::new(queue), changed: Condvar::new() }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Waits until every earlier caller has been admitted and a permit is free; returns the
    /// permit and a resource a finished holder left, if there is one.
    pub(crate) fn acquire(&self) -> (Permit<'_, R>, Option<R>) {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        while !(queue.next_admitted == ticket && queue.held < self.limit) {
            queue = self.changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        queue.next_admitted += 1;
        queue.held += 1;
        let spare = queue.spare.pop();
        drop(queue);
        // The next in line may be admitted too if permits remain.
        self.changed.notify_all();
        (Permit { permits: self, released: false }, spare)
    }

    /// Callers waiting for a permit now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> u64 {
        let queue = self.lock();
        queue.next_ticket - queue.next_admitted
    }

    /// Permits held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.lock().held
    }

    /// Resources kept for the next holder now.
    #[cfg(test)]
    pub(crate) fn spare(&self) -> usize {
        self.lock().spare.len()
    }

    /// Releases one permit; keeps `resource` for the next holder if anyone else holds or
    /// waits, otherwise returns it with every kept one, for the caller to drop.
    fn release(&self, resource: Option<R>) -> Vec<R> {
        let mut queue = self.lock();
        queue.held -= 1;
        let busy = queue.held > 0 || queue.next_ticket > queue.next_admitted;
        let unwanted = match resource {
            Some(resource) if busy => {
                queue.spare.push(resource);
                Vec::new()
            }
            resource => {
                let mut unwanted = if busy { Vec::new() } else { std::mem::take(&mut queue.spare) };
                unwanted.extend(resource);
                unwanted
            }
        };
        drop(queue);
        self.changed.notify_all();
        unwanted
    }

    /// The critical sections only count and move resources, so a poisoned lock still holds a
    /// consistent queue: carry on with it.
    fn lock(&self) -> MutexGuard<'_, Queue<R>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R> Permit<'_, R> {
    /// Releases the permit, handing `resource` on to the next holder if anyone is busy; if
    /// nobody is, it and every kept resource are dropped (after the lock is released).
    pub(crate) fn finish(mut self, resource: R) {
        self.released = true;
        drop(self.permits.release(Some(resource)));
    }
}

impl<R> Drop for Permit<'_, R> {
    fn drop(&mut self) {
        if !self.released {
            drop(self.permits.release(None));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier, mpsc};
    use std::thread;

    use super::*;

    #[test]
    fn never_more_holders_than_the_limit() {
        let permits = Arc::new(Permits::<()>::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (permits, inside, most, start) = (permits.clone(), inside.clone(), most.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..200 {
                        let (permit, _) = permits.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        permit.finish(());
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "{} holders at once", most.load(Ordering::SeqCst));
        assert_eq!((permits.held(), permits.waiting()), (0, 0));
        assert_eq!(permits.spare(), 0, "the last one out took every kept resource");
    }

    /// Waiters get in in the order they arrived, whatever order the wake-ups happen in.
    #[test]
    fn waiters_are_admitted_in_arrival_order() {
        let permits = Arc::new(Permits::<()>::new(1));
        let (first, _) = permits.acquire();
        let (admitted_tx, admitted) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut waiters = Vec::new();
        for n in 0..5u64 {
            let (shared, admitted_tx, release_rx) = (permits.clone(), admitted_tx.clone(), release_rx.clone());
            waiters.push(thread::spawn(move || {
                let (_permit, _) = shared.acquire();
                admitted_tx.send(n).unwrap();
                // Hold the permit until the test says so.
                release_rx.lock().unwrap().recv().unwrap();
            }));
            // The next waiter starts only once this one is queued, so arrival order is `n`.
            while permits.waiting() < n + 1 {
                thread::yield_now();
            }
        }
        drop(first);
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(admitted.recv().unwrap());
            assert_eq!(permits.held(), 1, "one permit, one holder");
            release_tx.send(()).unwrap();
        }
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }

    /// A resource is handed on while anyone else holds or waits, and given back by the last
    /// holder to finish.
    #[test]
    fn resources_are_kept_while_others_are_busy_and_dropped_when_nobody_is() {
        let permits = Arc::new(Permits::<u32>::new(2));
        let (alone, spare) = permits.acquire();
        assert_eq!(spare, None);
        alone.finish(1);
        assert_eq!(permits.spare(), 0, "nobody else was busy");

        let (first, _) = permits.acquire();
        let (second, _) = permits.acquire();
        first.finish(1);
        assert_eq!(permits.spare(), 1, "the second holder is still busy");
        let (third, spare) = permits.acquire();
        assert_eq!(spare, Some(1), "handed on");
        third.finish(3);
        assert_eq!(permits.spare(), 1);
        second.finish(2);
        assert_eq!(permits.spare(), 0, "the last one out gave everything back");

        // A waiter counts as busy.
        let one = Arc::new(Permits::<u32>::new(1));
        let (holder, _) = one.acquire();
        let waiter = {
            let one = one.clone();
            thread::spawn(move || {
                let (permit, spare) = one.acquire();
                permit.finish(7);
                spare
            })
        };
        while one.waiting() == 0 {
            thread::yield_now();
        }
        holder.finish(5);
        assert_eq!(waiter.join().unwrap(), Some(5));
        assert_eq!(one.spare(), 0);
    }

    #[test]
    fn a_permit_dropped_without_finishing_is_released() {
        let permits = Permits::<u32>::new(1);
        let (held, _) = permits.acquire();
        drop(held);
        assert_eq!(permits.held(), 0);
        let (again, _) = permits.acquire();
        again.finish(1);
    }

    #[test]
    fn a_limit_of_zero_still_admits_one() {
        let permits = Permits::<()>::new(0);
        assert_eq!(permits.limit(), 1);
        drop(permits.acquire());
        drop(permits.acquire());
    }
}
