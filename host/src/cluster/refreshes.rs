//! What the one metadata refresh path remembers between refreshes: when each scope was last
//! asked for and answered. From it come the two decisions that keep refreshes few without
//! keeping answers old:
//!
//! - **The floor** ([`Refreshes::floor`]): no two requests asking for the same topics start
//!   closer together than `min_age`. A request for every topic counts for every topic. A
//!   lookup naming a topic not asked for within `min_age` does not wait (the Java client's
//!   rule too: new topics allow an immediate update), so a group leader looking up a topic
//!   only another member subscribes to is not held up by its own lookup a moment before.
//! - **Current enough** ([`Refreshes::answered_within`]): a by-name lookup whose topics were
//!   all answered within `min_age` is served from the cache; the answer could not be asked
//!   for again before then anyway.
//!
//! Invariant: by-name entries are kept only for what happened after the last request (or
//! answer) for every topic, which supersedes them, so the maps hold at most the topics named
//! since then.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::MetadataScope;

/// The asks and answers of one client's refresh path (held under its lock).
#[derive(Debug, Default)]
pub struct Refreshes {
    /// When the last request for every topic went out.
    all_topics_asked: Option<Instant>,
    /// When each topic was last named in a request, since `all_topics_asked`.
    topics_asked: BTreeMap<String, Instant>,
    /// The generation and time of the last answer for every topic.
    all_topics_answered: Option<(u64, Instant)>,
    /// The generation and time of each topic's last by-name answer, since the last answer
    /// for every topic.
    topics_answered: BTreeMap<String, (u64, Instant)>,
}

impl Refreshes {
    /// Records that a request for `scope` goes out at `at`.
    pub fn asked(&mut self, scope: &MetadataScope, at: Instant) {
        match scope {
            MetadataScope::AllTopics => {
                self.all_topics_asked = Some(at);
                self.topics_asked.clear();
            }
            MetadataScope::Topics(topics) => {
                for topic in topics {
                    self.topics_asked.insert(topic.clone(), at);
                }
            }
        }
    }

    /// Records that the answer for `scope` was merged as snapshot `generation` at `at`.
    pub fn answered(&mut self, scope: &MetadataScope, generation: u64, at: Instant) {
        match scope {
            MetadataScope::AllTopics => {
                self.all_topics_answered = Some((generation, at));
                self.topics_answered.clear();
            }
            MetadataScope::Topics(topics) => {
                for topic in topics {
                    self.topics_answered.insert(topic.clone(), (generation, at));
                }
            }
        }
    }

    /// When a request for `scope` may start: `min_age` after every topic in it was last asked
    /// for. `None` when some topic in it was not asked for yet (or, for every topic, no such
    /// request went out yet).
    pub fn floor(&self, scope: &MetadataScope, min_age: Duration) -> Option<Instant> {
        let last_asked = match scope {
            MetadataScope::AllTopics => self.all_topics_asked,
            MetadataScope::Topics(topics) => self.each_since(topics, |topic| {
                let by_name = self.topics_asked.get(topic).copied();
                by_name.max(self.all_topics_asked)
            }),
        };
        last_asked.map(|at| at + min_age)
    }

    /// True when an answer for each topic of `scope` was merged after snapshot generation
    /// `generation` (for every topic: one answer for every topic).
    pub fn answered_since(&self, scope: &MetadataScope, generation: u64) -> bool {
        let answered_after = |answer: Option<(u64, Instant)>| {
            answer.is_some_and(|(answered, _)| answered > generation)
        };
        if answered_after(self.all_topics_answered) {
            return true;
        }
        match scope {
            MetadataScope::AllTopics => false,
            MetadataScope::Topics(topics) => topics
                .iter()
                .all(|topic| answered_after(self.topics_answered.get(topic).copied())),
        }
    }

    /// True when every topic of `scope` was answered (by name or in an answer for every
    /// topic) less than `min_age` before `now`.
    pub fn answered_within(&self, scope: &MetadataScope, min_age: Duration, now: Instant) -> bool {
        let answered = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) < min_age);
        let all_topics = self.all_topics_answered.map(|(_, at)| at);
        match scope {
            MetadataScope::AllTopics => answered(all_topics),
            MetadataScope::Topics(topics) => answered(self.each_since(topics, |topic| {
                let by_name = self.topics_answered.get(topic).map(|(_, at)| *at);
                by_name.max(all_topics)
            })),
        }
    }

    /// The earliest of `time_of` over `topics`: the time since which every one of them has
    /// one. `None` if one of them has none (or there are no topics).
    fn each_since(
        &self,
        topics: &std::collections::BTreeSet<String>,
        time_of: impl Fn(&str) -> Option<Instant>,
    ) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for topic in topics {
            let at = time_of(topic)?;
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
        earliest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_AGE: Duration = Duration::from_millis(1000);

    fn topics(names: &[&str]) -> MetadataScope {
        MetadataScope::topics(names.iter().copied())
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_asked_yet_means_no_floor() {
        let refreshes = Refreshes::default();
        assert_eq!(refreshes.floor(&MetadataScope::AllTopics, MIN_AGE), None);
        assert_eq!(refreshes.floor(&topics(&["a"]), MIN_AGE), None);
    }

    #[test]
    fn the_same_topics_asked_again_wait_for_the_floor() {
        let start = Instant::now();
        let mut refreshes = Refreshes::default();
        refreshes.asked(&topics(&["a", "b"]), start);
        assert_eq!(
            refreshes.floor(&topics(&["a"]), MIN_AGE),
            Some(start + MIN_AGE)
        );
        assert_eq!(
            refreshes.floor(&topics(&["a", "b"]), MIN_AGE),
            Some(start + MIN_AGE)
        );
        // A by-name lookup does not hold up a request for every topic.
        assert_eq!(refreshes.floor(&MetadataScope::AllTopics, MIN_AGE), None);
    }

    #[test]
    fn a_topic_not_asked_for_lately_does_not_wait() {
        let start = Instant::now();
        let mut refreshes = Refreshes::default();
        refreshes.asked(&topics(&["mine"]), start);
        // The leader looks up its own topic and one only another member subscribes to.
        assert_eq!(refreshes.floor(&topics(&["mine", "theirs"]), MIN_AGE), None);
        // Asked for at different times: the floor counts from the older ask.
        refreshes.asked(&topics(&["theirs"]), start + ms(300));
        assert_eq!(
            refreshes.floor(&topics(&["mine", "theirs"]), MIN_AGE),
            Some(start + MIN_AGE)
        );
    }

    #[test]
    fn a_request_for_every_topic_counts_for_each_topic() {
        let start = Instant::now();
        let mut refreshes = Refreshes::default();
        refreshes.asked(&topics(&["a"]), start);
        refreshes.asked(&MetadataScope::AllTopics, start + ms(200));
        let floor = Some(start + ms(200) + MIN_AGE);
        assert_eq!(refreshes.floor(&topics(&["a"]), MIN_AGE), floor);
        assert_eq!(refreshes.floor(&topics(&["new"]), MIN_AGE), floor);
        assert_eq!(refreshes.floor(&MetadataScope::AllTopics, MIN_AGE), floor);
    }

    #[test]
    fn an_answer_counts_for_the_topics_it_was_asked_for() {
        let start = Instant::now();
        let mut refreshes = Refreshes::default();
        refreshes.answered(&topics(&["a", "b"]), 5, start);
        assert!(refreshes.answered_since(&topics(&["a"]), 4));
        assert!(refreshes.answered_since(&topics(&["a", "b"]), 4));
        assert!(!refreshes.answered_since(&topics(&["a", "c"]), 4));
        assert!(!refreshes.answered_since(&topics(&["a"]), 5));
        assert!(!refreshes.answered_since(&MetadataScope::AllTopics, 4));
        // Two answers together cover what each named.
        refreshes.answered(&topics(&["c"]), 6, start);
        assert!(refreshes.answered_since(&topics(&["a", "c"]), 4));
        assert!(!refreshes.answered_since(&topics(&["a", "c"]), 5));
        // An answer for every topic covers any scope.
        refreshes.answered(&MetadataScope::AllTopics, 7, start);
        assert!(refreshes.answered_since(&topics(&["z"]), 6));
        assert!(refreshes.answered_since(&MetadataScope::AllTopics, 6));
    }

    #[test]
    fn topics_answered_within_the_floor_are_current_enough() {
        let start = Instant::now();
        let mut refreshes = Refreshes::default();
        assert!(!refreshes.answered_within(&topics(&["a"]), MIN_AGE, start));
        refreshes.answered(&topics(&["a"]), 1, start);
        assert!(refreshes.answered_within(&topics(&["a"]), MIN_AGE, start + ms(10)));
        assert!(!refreshes.answered_within(&topics(&["a", "b"]), MIN_AGE, start + ms(10)));
        assert!(!refreshes.answered_within(&topics(&["a"]), MIN_AGE, start + MIN_AGE));
        assert!(!refreshes.answered_within(&MetadataScope::AllTopics, MIN_AGE, start));
        refreshes.answered(&MetadataScope::AllTopics, 2, start + ms(500));
        assert!(refreshes.answered_within(&topics(&["b"]), MIN_AGE, start + ms(1200)));
        assert!(refreshes.answered_within(&MetadataScope::AllTopics, MIN_AGE, start + ms(1200)));
    }
}
