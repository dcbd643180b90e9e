//! When a map or list that has shrunk gives its spare room back.
//!
//! A `HashMap` or `Vec` keeps the capacity of its largest size, so after 20,000 members have
//! come and gone the maps would still hold room for 20,000. Room is given back once no more
//! than a quarter of it is used, down to twice what is left: a collection hovering around one
//! size never reallocates back and forth, and shrinking costs O(len) only after at least as
//! many removals, so it adds O(1) per removal. Pure: it only resizes the collection given.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Capacities at or below this are kept whatever the length: too small to matter.
const KEEP_CAPACITY: usize = 64;

/// Whether a collection of `len` items and room for `capacity` should shrink.
pub fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity > KEEP_CAPACITY && len.saturating_mul(4) <= capacity
}

/// The capacity a sparse collection of `len` items shrinks to.
fn shrunk(len: usize) -> usize {
    (len * 2).max(KEEP_CAPACITY / 2)
}

/// Gives back `map`'s spare room if it is sparse; call after removing from it.
pub fn release_spare<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if is_sparse(map.len(), map.capacity()) {
        map.shrink_to(shrunk(map.len()));
    }
}

/// Gives back `list`'s spare room if it is sparse; call after removing from it.
pub fn release_spare_vec<T>(list: &mut Vec<T>) {
    if is_sparse(list.len(), list.capacity()) {
        list.shrink_to(shrunk(list.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_or_well_used_collections_keep_their_room() {
        assert!(!is_sparse(0, KEEP_CAPACITY));
        assert!(!is_sparse(0, 0));
        assert!(!is_sparse(300, 1000));
        assert!(is_sparse(250, 1000));
        assert!(is_sparse(0, 1000));
    }

    #[test]
    fn a_map_emptied_after_a_crowd_gives_its_room_back() {
        let mut map: HashMap<usize, String> = (0..20_000).map(|i| (i, i.to_string())).collect();
        let full = map.capacity();
        assert!(full >= 20_000);
        for i in 0..20_000 {
            map.remove(&i);
            release_spare(&mut map);
            // Never below what is left, never far above it once it has shrunk.
            assert!(map.capacity() >= map.len());
            assert!(map.capacity() <= full);
        }
        assert!(map.capacity() <= KEEP_CAPACITY, "{}", map.capacity());
    }

    #[test]
    fn a_map_hovering_around_one_size_does_not_reallocate() {
        let mut map: HashMap<usize, ()> = (0..1000).map(|i| (i, ())).collect();
        for i in 0..800 {
            map.remove(&i);
            release_spare(&mut map);
        }
        let settled = map.capacity();
        // Members coming and going around 200 neither halve nor double the room (removals
        // leave tombstones, which the reported capacity counts as used until a rehash).
        for round in 0..10 {
            for i in 0..100 {
                map.insert(10_000 + round * 100 + i, ());
            }
            for i in 0..100 {
                map.remove(&(10_000 + round * 100 + i));
                release_spare(&mut map);
            }
            let now = map.capacity();
            assert!(now > settled / 2 && now <= settled, "{now} from {settled}");
        }
    }

    #[test]
    fn a_list_emptied_gives_its_room_back() {
        let mut list: Vec<u32> = (0..10_000).collect();
        while list.pop().is_some() {
            release_spare_vec(&mut list);
            assert!(list.capacity() >= list.len());
        }
        assert!(list.capacity() <= KEEP_CAPACITY);
    }
}
