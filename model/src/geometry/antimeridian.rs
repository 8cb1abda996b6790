//! Footprints that run past ±180° of longitude, as remote catalogues write
//! the ones that cross the antimeridian: cut there and the far part moved
//! back by 360°, as GeoJSON (RFC 7946, 3.1.9) asks, so that a query in SRID
//! 4326 (`Intersects(footprint, MakePoint(-179.5, 0, 4326))`) finds them.

use super::{Geometry, Point};

impl Geometry {
    /// The geometry with every longitude in [-180, 180]: a polygon that runs
    /// past 180° (or -180°) is cut at that meridian into two polygons, the
    /// part beyond moved by 360°; a geometry that needed cutting becomes a
    /// multi-polygon. Left as written (still a valid planar geometry) are
    /// polygons within [-180, 180], shapes other than polygons, and the
    /// polygons a straight cut would spoil: a ring that crosses the meridian
    /// more than twice, or a hole that crosses it (either would leave a ring
    /// touching itself along the cut).
    pub fn within_longitudes(self) -> Geometry {
        let polygons = match &self {
            Geometry::Polygon(rings) => vec![rings.clone()],
            Geometry::MultiPolygon(polygons) => polygons.clone(),
            _ => return self,
        };
        let mut cut = Vec::with_capacity(polygons.len() + 1);
        let mut changed = false;
        for rings in polygons {
            match split(&rings) {
                Some(parts) => {
                    changed = true;
                    cut.extend(parts);
                }
                None => cut.push(rings),
            }
        }
        if !changed {
            return self;
        }
        Geometry::MultiPolygon(cut)
    }
}

/// The parts of one polygon cut at the meridian it runs past, or `None`
/// when it needs no cut or cannot be cut cleanly.
fn split(rings: &[Vec<Point>]) -> Option<Vec<Vec<Vec<Point>>>> {
    let points = || rings.iter().flatten();
    let east = points().any(|p| p.x > 180.0);
    let west = points().any(|p| p.x < -180.0);
    let (meridian, shift) = match (east, west) {
        (true, false) => (180.0, -360.0),
        (false, true) => (-180.0, 360.0),
        _ => return None, // within range, or past both sides: leave it
    };
    let (shell, holes) = rings.split_first()?;
    if crossings(shell, meridian) > 2 || holes.iter().any(|h| crossings(h, meridian) > 0) {
        return None;
    }
    let beyond = |p: &Point| (p.x - meridian) * shift < 0.0;
    let mut parts = Vec::new();
    for far in [false, true] {
        let keep = |p: &Point| {
            if far {
                (p.x - meridian) * shift <= 0.0
            } else {
                (p.x - meridian) * shift >= 0.0
            }
        };
        let Some(mut part_shell) = clip(shell, meridian, keep) else {
            continue;
        };
        let mut part = Vec::with_capacity(1 + holes.len());
        let mut part_holes: Vec<Vec<Point>> = holes
            .iter()
            .filter(|hole| hole.iter().any(|p| beyond(p) == far && p.x != meridian))
            .cloned()
            .collect();
        if far {
            for p in part_shell.iter_mut().chain(part_holes.iter_mut().flatten()) {
                p.x += shift;
            }
        }
        part.push(part_shell);
        part.extend(part_holes);
        parts.push(part);
    }
    (!parts.is_empty()).then_some(parts)
}

/// How many times a closed ring passes from one side of the meridian to
/// the other (points on it belong to neither side).
fn crossings(ring: &[Point], meridian: f64) -> usize {
    let sides: Vec<bool> = ring
        .iter()
        .filter(|p| p.x != meridian)
        .map(|p| p.x > meridian)
        .collect();
    let along = sides.windows(2).filter(|w| w[0] != w[1]).count();
    // And from the last point off the meridian back to the first.
    along + usize::from(sides.first() != sides.last())
}

/// The part of a closed ring whose points `keep` accepts, cut along the
/// meridian (Sutherland-Hodgman against one line); `None` when nothing
/// with an area is left.
fn clip(ring: &[Point], meridian: f64, keep: impl Fn(&Point) -> bool) -> Option<Vec<Point>> {
    let crossing = |a: &Point, b: &Point| {
        let t = (meridian - a.x) / (b.x - a.x);
        Point {
            x: meridian,
            y: a.y + t * (b.y - a.y),
        }
    };
    let mut out: Vec<Point> = Vec::with_capacity(ring.len() + 2);
    let mut push = |p: Point| {
        if out.last() != Some(&p) {
            out.push(p);
        }
    };
    for edge in ring.windows(2) {
        let (a, b) = (&edge[0], &edge[1]);
        match (keep(a), keep(b)) {
            (true, true) => push(*b),
            (true, false) => push(crossing(a, b)),
            (false, true) => {
                push(crossing(a, b));
                push(*b);
            }
            (false, false) => {}
        }
    }
    if let Some(first) = out.first().copied() {
        if out.last() != Some(&first) {
            out.push(first);
        }
    }
    let area: f64 = out
        .windows(2)
        .map(|w| w[0].x * w[1].y - w[1].x * w[0].y)
        .sum();
    (out.len() >= 4 && area != 0.0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wkt(text: &str) -> Geometry {
        Geometry::from_wkt(text).unwrap()
    }

    #[test]
    fn a_polygon_past_180_is_cut_there() {
        let cut = wkt("POLYGON((179 0, 181 0, 181 1, 179 1, 179 0))").within_longitudes();
        assert_eq!(
            cut.to_wkt(),
            "MULTIPOLYGON(((180 0, 180 1, 179 1, 179 0, 180 0)), ((-180 0, -179 0, -179 1, -180 1, -180 0)))"
        );
        // A Copernicus DEM tile whose edge lies just west of -180.
        let tile = wkt("POLYGON((-179.0013888888889 -89.99986111111112, -179.0013888888889 -88.99986111111112, -180.0013888888889 -88.99986111111112, -180.0013888888889 -89.99986111111112, -179.0013888888889 -89.99986111111112))")
            .within_longitudes();
        let Geometry::MultiPolygon(parts) = &tile else {
            panic!("{tile}")
        };
        assert_eq!(parts.len(), 2);
        let (min, max) = tile.bounds();
        assert!(min.x >= -180.0 && max.x <= 180.0, "{tile}");
        assert!(parts[1][0].iter().all(|p| p.x >= 179.99 && p.x <= 180.0));
    }

    #[test]
    fn what_needs_no_cut_or_cannot_be_cut_cleanly_stays_as_written() {
        for text in [
            "POLYGON((5 52, 6 52, 6 53, 5 52))",
            "MULTIPOLYGON(((179 0, 180 0, 180 1, 179 0)), ((-180 0, -179 0, -180 1, -180 0)))",
            "LINESTRING(179 0, 181 0)",
            // A ring that crosses 180 four times (a U lying across it).
            "POLYGON((179 0, 182 0, 182 3, 179 3, 179 2, 181 2, 181 1, 179 1, 179 0))",
        ] {
            assert_eq!(wkt(text).within_longitudes(), wkt(text), "{text}");
        }
    }

    #[test]
    fn holes_go_with_their_side() {
        let cut =
            wkt("POLYGON((170 0, 190 0, 190 10, 170 10, 170 0), (185 4, 186 4, 186 5, 185 4))")
                .within_longitudes();
        let Geometry::MultiPolygon(parts) = cut else {
            panic!()
        };
        assert_eq!((parts[0].len(), parts[1].len()), (1, 2));
        assert_eq!(parts[1][1][0], Point { x: -175.0, y: 4.0 });
    }
}
