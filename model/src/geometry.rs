//! Footprints: 2-D geometries in WGS 84 (SRID 4326), the shapes muninn
//! supports, read from WKT and GeoJSON and stored as WKT text or as
//! SpatiaLite BLOB geometries (the encoding muninn's SQLite backend writes).

mod antimeridian;

use std::fmt::{self, Write as _};

/// A coordinate pair: x is longitude, y is latitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// A 2-D geometry. Polygon rings are closed (first point equals last), as in
/// WKT and GeoJSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    Point(Point),
    LineString(Vec<Point>),
    Polygon(Vec<Vec<Point>>),
    MultiPoint(Vec<Point>),
    MultiLineString(Vec<Vec<Point>>),
    MultiPolygon(Vec<Vec<Vec<Point>>>),
}

/// Why a geometry could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeometryError(String);

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GeometryError {}

fn error<T>(message: impl Into<String>) -> Result<T, GeometryError> {
    Err(GeometryError(message.into()))
}

/// SpatiaLite's geometry class codes (the OGC WKB type codes, 2-D).
const CLASS_POINT: u32 = 1;
const CLASS_LINESTRING: u32 = 2;
const CLASS_POLYGON: u32 = 3;
const CLASS_MULTIPOINT: u32 = 4;
const CLASS_MULTILINESTRING: u32 = 5;
const CLASS_MULTIPOLYGON: u32 = 6;
const BLOB_START: u8 = 0x00;
const BLOB_MBR_END: u8 = 0x7C;
const BLOB_ENTITY: u8 = 0x69;
const BLOB_END: u8 = 0xFE;
const SRID_WGS84: u32 = 4326;

impl Geometry {
    /// Reads WKT (`POLYGON((5 52, 6 52, 6 53, 5 52))`), also with an EWKT
    /// `SRID=4326;` prefix. Only 2-D, non-empty geometries are accepted, as
    /// muninn stores nothing else; polygon rings must be closed.
    pub fn from_wkt(text: &str) -> Result<Geometry, GeometryError> {
        let mut body = text.trim();
        if let Some(rest) = strip_prefix_ignore_case(body, "SRID=") {
            let (srid, geometry) = rest.split_once(';').ok_or_else(|| {
                GeometryError(format!("invalid WKT \"{text}\": SRID without ';'"))
            })?;
            if srid.trim() != "4326" {
                return error(format!(
                    "invalid WKT \"{text}\": SRID {srid} is not supported (only 4326, WGS 84)"
                ));
            }
            body = geometry;
        }
        let mut parser = WktParser {
            text: body,
            position: 0,
        };
        let geometry = parser
            .geometry()
            .map_err(|e| GeometryError(format!("invalid WKT \"{}\": {}", abbreviate(text), e.0)))?;
        parser.skip_space();
        if parser.position != body.len() {
            return error(format!(
                "invalid WKT \"{}\": unexpected text after the geometry",
                abbreviate(text)
            ));
        }
        Ok(geometry)
    }

    /// Writes WKT with the shortest decimal form of each coordinate that reads
    /// back to the same number, so that WKT text round-trips exactly.
    pub fn to_wkt(&self) -> String {
        let mut out = String::new();
        match self {
            Geometry::Point(p) => {
                out.push_str("POINT(");
                write_point(&mut out, p);
                out.push(')');
            }
            Geometry::LineString(points) => {
                out.push_str("LINESTRING");
                write_points(&mut out, points);
            }
            Geometry::Polygon(rings) => {
                out.push_str("POLYGON");
                write_rings(&mut out, rings);
            }
            Geometry::MultiPoint(points) => {
                out.push_str("MULTIPOINT(");
                for (i, p) in points.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push('(');
                    write_point(&mut out, p);
                    out.push(')');
                }
                out.push(')');
            }
            Geometry::MultiLineString(lines) => {
                out.push_str("MULTILINESTRING");
                write_rings(&mut out, lines);
            }
            Geometry::MultiPolygon(polygons) => {
                out.push_str("MULTIPOLYGON(");
                for (i, rings) in polygons.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_rings(&mut out, rings);
                }
                out.push(')');
            }
        }
        out
    }

    /// Reads a GeoJSON geometry object (`{"type": "Polygon", "coordinates": ...}`),
    /// as STAC items and OData `GeoFootprint` carry them.
    pub fn from_geojson(value: &serde_json::Value) -> Result<Geometry, GeometryError> {
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| GeometryError("invalid GeoJSON geometry: no \"type\"".into()))?;
        let coordinates = value
            .get("coordinates")
            .ok_or_else(|| GeometryError(format!("invalid GeoJSON {kind}: no \"coordinates\"")))?;
        let geometry = match kind {
            "Point" => Geometry::Point(json_point(coordinates)?),
            "LineString" => Geometry::LineString(json_points(coordinates)?),
            "Polygon" => Geometry::Polygon(json_rings(coordinates)?),
            "MultiPoint" => Geometry::MultiPoint(json_points(coordinates)?),
            "MultiLineString" => Geometry::MultiLineString(json_rings(coordinates)?),
            "MultiPolygon" => Geometry::MultiPolygon(
                json_array(coordinates)?
                    .iter()
                    .map(json_rings)
                    .collect::<Result<_, _>>()?,
            ),
            other => return error(format!("unsupported GeoJSON geometry type \"{other}\"")),
        };
        geometry.validate()?;
        Ok(geometry)
    }

    /// Encodes the geometry as a SpatiaLite BLOB geometry with SRID 4326, byte
    /// for byte what muninn's SQLite backend writes.
    pub fn to_spatialite_blob(&self) -> Vec<u8> {
        let (min, max) = self.bounds();
        let mut blob = Vec::with_capacity(64);
        blob.push(BLOB_START);
        blob.push(1); // little endian
        blob.extend_from_slice(&SRID_WGS84.to_le_bytes());
        for value in [min.x, min.y, max.x, max.y] {
            blob.extend_from_slice(&value.to_le_bytes());
        }
        blob.push(BLOB_MBR_END);
        self.encode_blob_body(&mut blob);
        blob.push(BLOB_END);
        blob
    }

    /// Decodes a SpatiaLite BLOB geometry (either byte order, SRID 4326).
    pub fn from_spatialite_blob(blob: &[u8]) -> Result<Geometry, GeometryError> {
        let mut reader = BlobReader {
            blob,
            position: 0,
            little_endian: true,
        };
        if reader.byte()? != BLOB_START {
            return error("invalid SpatiaLite BLOB geometry: bad start byte");
        }
        reader.little_endian = match reader.byte()? {
            0 => false,
            1 => true,
            other => {
                return error(format!(
                    "invalid SpatiaLite BLOB geometry: endian byte {other}"
                ))
            }
        };
        let srid = reader.u32()?;
        if srid != SRID_WGS84 {
            return error(format!(
                "unsupported SRID {srid} in SpatiaLite BLOB geometry"
            ));
        }
        for _ in 0..4 {
            reader.f64()?;
        }
        if reader.byte()? != BLOB_MBR_END {
            return error("invalid SpatiaLite BLOB geometry: no MBR end marker");
        }
        let class = reader.u32()?;
        let geometry = reader.geometry(class)?;
        if reader.byte()? != BLOB_END || reader.position != blob.len() {
            return error("invalid SpatiaLite BLOB geometry: bad end marker");
        }
        Ok(geometry)
    }

    /// The bounding box: (lower-left, upper-right).
    pub fn bounds(&self) -> (Point, Point) {
        let mut min = Point {
            x: f64::INFINITY,
            y: f64::INFINITY,
        };
        let mut max = Point {
            x: f64::NEG_INFINITY,
            y: f64::NEG_INFINITY,
        };
        self.for_each_point(&mut |p| {
            min.x = min.x.min(p.x);
            min.y = min.y.min(p.y);
            max.x = max.x.max(p.x);
            max.y = max.y.max(p.y);
        });
        (min, max)
    }

    fn for_each_point(&self, visit: &mut impl FnMut(&Point)) {
        match self {
            Geometry::Point(p) => visit(p),
            Geometry::LineString(points) | Geometry::MultiPoint(points) => {
                points.iter().for_each(visit)
            }
            Geometry::Polygon(rings) | Geometry::MultiLineString(rings) => {
                rings.iter().flatten().for_each(visit)
            }
            Geometry::MultiPolygon(polygons) => polygons.iter().flatten().flatten().for_each(visit),
        }
    }

    /// Checks that every coordinate lies on the WGS 84 globe: latitude in
    /// [-90, 90], longitude in [-180, 180] (a footprint that crosses the
    /// antimeridian is cut there first, see [`Geometry::within_longitudes`]).
    /// SpatiaLite stores anything, but a point off the globe matches no
    /// spatial query a user writes and breaks muninn's and SpatiaLite's
    /// geodesic functions. The error names the first coordinate outside.
    pub fn check_wgs84(&self) -> Result<(), GeometryError> {
        let mut outside = None;
        self.for_each_point(&mut |p| {
            if outside.is_some() {
                return;
            }
            if !(-90.0..=90.0).contains(&p.y) {
                outside = Some(format!("latitude {} lies outside [-90, 90]", p.y));
            } else if !(-180.0..=180.0).contains(&p.x) {
                outside = Some(format!("longitude {} lies outside [-180, 180]", p.x));
            }
        });
        match outside {
            Some(why) => error(why),
            None => Ok(()),
        }
    }

    /// Checks the rules muninn's decoder enforces: nothing empty, lines of at
    /// least two points, closed rings of at least four points, finite numbers.
    fn validate(&self) -> Result<(), GeometryError> {
        let mut finite = true;
        self.for_each_point(&mut |p| finite &= p.x.is_finite() && p.y.is_finite());
        if !finite {
            return error("coordinates must be finite numbers");
        }
        let check_line = |points: &Vec<Point>| {
            if points.len() < 2 {
                return error("a line string needs at least 2 points");
            }
            Ok(())
        };
        let check_rings = |rings: &Vec<Vec<Point>>| {
            if rings.is_empty() {
                return error("a polygon needs at least one ring");
            }
            for ring in rings {
                if ring.len() < 4 {
                    return error("a polygon ring needs at least 4 points");
                }
                if ring.first() != ring.last() {
                    return error("a polygon ring must be closed (first point equal to last)");
                }
            }
            Ok(())
        };
        match self {
            Geometry::Point(_) => Ok(()),
            Geometry::LineString(points) => check_line(points),
            Geometry::Polygon(rings) => check_rings(rings),
            Geometry::MultiPoint(points) if points.is_empty() => {
                error("a multi-point needs at least one point")
            }
            Geometry::MultiPoint(_) => Ok(()),
            Geometry::MultiLineString(lines) if lines.is_empty() => {
                error("a multi-line string needs at least one line")
            }
            Geometry::MultiLineString(lines) => lines.iter().try_for_each(check_line),
            Geometry::MultiPolygon(polygons) if polygons.is_empty() => {
                error("a multi-polygon needs at least one polygon")
            }
            Geometry::MultiPolygon(polygons) => polygons.iter().try_for_each(check_rings),
        }
    }

    fn encode_blob_body(&self, blob: &mut Vec<u8>) {
        fn points(blob: &mut Vec<u8>, points: &[Point]) {
            blob.extend_from_slice(&(points.len() as u32).to_le_bytes());
            for p in points {
                blob.extend_from_slice(&p.x.to_le_bytes());
                blob.extend_from_slice(&p.y.to_le_bytes());
            }
        }
        fn rings(blob: &mut Vec<u8>, rings: &[Vec<Point>]) {
            blob.extend_from_slice(&(rings.len() as u32).to_le_bytes());
            for ring in rings {
                points(blob, ring);
            }
        }
        fn member(blob: &mut Vec<u8>, class: u32) {
            blob.push(BLOB_ENTITY);
            blob.extend_from_slice(&class.to_le_bytes());
        }
        match self {
            Geometry::Point(p) => {
                blob.extend_from_slice(&CLASS_POINT.to_le_bytes());
                blob.extend_from_slice(&p.x.to_le_bytes());
                blob.extend_from_slice(&p.y.to_le_bytes());
            }
            Geometry::LineString(line) => {
                blob.extend_from_slice(&CLASS_LINESTRING.to_le_bytes());
                points(blob, line);
            }
            Geometry::Polygon(polygon) => {
                blob.extend_from_slice(&CLASS_POLYGON.to_le_bytes());
                rings(blob, polygon);
            }
            Geometry::MultiPoint(members) => {
                blob.extend_from_slice(&CLASS_MULTIPOINT.to_le_bytes());
                blob.extend_from_slice(&(members.len() as u32).to_le_bytes());
                for p in members {
                    member(blob, CLASS_POINT);
                    blob.extend_from_slice(&p.x.to_le_bytes());
                    blob.extend_from_slice(&p.y.to_le_bytes());
                }
            }
            Geometry::MultiLineString(members) => {
                blob.extend_from_slice(&CLASS_MULTILINESTRING.to_le_bytes());
                blob.extend_from_slice(&(members.len() as u32).to_le_bytes());
                for line in members {
                    member(blob, CLASS_LINESTRING);
                    points(blob, line);
                }
            }
            Geometry::MultiPolygon(members) => {
                blob.extend_from_slice(&CLASS_MULTIPOLYGON.to_le_bytes());
                blob.extend_from_slice(&(members.len() as u32).to_le_bytes());
                for polygon in members {
                    member(blob, CLASS_POLYGON);
                    rings(blob, polygon);
                }
            }
        }
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wkt())
    }
}

fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 80;
    if text.chars().count() <= LIMIT {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(LIMIT).collect::<String>())
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn write_point(out: &mut String, p: &Point) {
    let _ = write!(out, "{} {}", p.x, p.y);
}

fn write_points(out: &mut String, points: &[Point]) {
    out.push('(');
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_point(out, p);
    }
    out.push(')');
}

fn write_rings(out: &mut String, rings: &[Vec<Point>]) {
    out.push('(');
    for (i, ring) in rings.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_points(out, ring);
    }
    out.push(')');
}

struct WktParser<'a> {
    text: &'a str,
    position: usize,
}

impl WktParser<'_> {
    fn skip_space(&mut self) {
        let rest = &self.text[self.position..];
        self.position += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.position..].chars().next()
    }

    fn expect(&mut self, wanted: char) -> Result<(), GeometryError> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.position += 1;
                Ok(())
            }
            Some(c) => error(format!("expected '{wanted}', found '{c}'")),
            None => error(format!("expected '{wanted}', found the end")),
        }
    }

    fn word(&mut self) -> String {
        self.skip_space();
        let rest = &self.text[self.position..];
        let length = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        self.position += length;
        rest[..length].to_ascii_uppercase()
    }

    fn number(&mut self) -> Result<f64, GeometryError> {
        self.skip_space();
        let rest = &self.text[self.position..];
        let length = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(rest.len());
        let value: f64 = rest[..length].parse().map_err(|_| {
            GeometryError(format!("expected a number, found \"{}\"", abbreviate(rest)))
        })?;
        if !value.is_finite() {
            return error("coordinates must be finite numbers");
        }
        self.position += length;
        Ok(value)
    }

    fn point(&mut self) -> Result<Point, GeometryError> {
        let x = self.number()?;
        let y = self.number()?;
        if matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        {
            return error("only 2-D coordinates are supported");
        }
        Ok(Point { x, y })
    }

    /// `(x y, x y, ...)`
    fn points(&mut self) -> Result<Vec<Point>, GeometryError> {
        self.expect('(')?;
        let mut points = vec![self.point()?];
        while self.peek() == Some(',') {
            self.position += 1;
            points.push(self.point()?);
        }
        self.expect(')')?;
        Ok(points)
    }

    /// `((...), (...))`
    fn lists(&mut self) -> Result<Vec<Vec<Point>>, GeometryError> {
        self.expect('(')?;
        let mut lists = vec![self.points()?];
        while self.peek() == Some(',') {
            self.position += 1;
            lists.push(self.points()?);
        }
        self.expect(')')?;
        Ok(lists)
    }

    /// A multi-point's members, with or without parentheses around each.
    fn multi_points(&mut self) -> Result<Vec<Point>, GeometryError> {
        self.expect('(')?;
        let mut points = Vec::new();
        loop {
            if self.peek() == Some('(') {
                self.position += 1;
                points.push(self.point()?);
                self.expect(')')?;
            } else {
                points.push(self.point()?);
            }
            if self.peek() != Some(',') {
                break;
            }
            self.position += 1;
        }
        self.expect(')')?;
        Ok(points)
    }

    fn geometry(&mut self) -> Result<Geometry, GeometryError> {
        let kind = self.word();
        let modifier_at = self.position;
        let modifier = self.word();
        if !modifier.is_empty() {
            if modifier == "EMPTY" {
                return error(
                    "empty geometries are not supported: leave the footprint out instead",
                );
            }
            if matches!(modifier.as_str(), "Z" | "M" | "ZM") {
                return error("only 2-D coordinates are supported");
            }
            self.position = modifier_at;
            return error(format!("unexpected \"{modifier}\""));
        }
        let geometry = match kind.as_str() {
            "POINT" => {
                self.expect('(')?;
                let p = self.point()?;
                self.expect(')')?;
                Geometry::Point(p)
            }
            "LINESTRING" => Geometry::LineString(self.points()?),
            "POLYGON" => Geometry::Polygon(self.lists()?),
            "MULTIPOINT" => Geometry::MultiPoint(self.multi_points()?),
            "MULTILINESTRING" => Geometry::MultiLineString(self.lists()?),
            "MULTIPOLYGON" => {
                self.expect('(')?;
                let mut polygons = vec![self.lists()?];
                while self.peek() == Some(',') {
                    self.position += 1;
                    polygons.push(self.lists()?);
                }
                self.expect(')')?;
                Geometry::MultiPolygon(polygons)
            }
            "" => return error("expected a geometry type such as POLYGON"),
            other => return error(format!("unsupported geometry type {other}")),
        };
        geometry.validate()?;
        Ok(geometry)
    }
}

fn json_array(value: &serde_json::Value) -> Result<&Vec<serde_json::Value>, GeometryError> {
    value
        .as_array()
        .ok_or_else(|| GeometryError("invalid GeoJSON coordinates: expected an array".into()))
}

fn json_point(value: &serde_json::Value) -> Result<Point, GeometryError> {
    let items = json_array(value)?;
    match items.as_slice() {
        [x, y, ..] => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => Ok(Point { x, y }),
            _ => error("invalid GeoJSON position: expected numbers"),
        },
        _ => error("invalid GeoJSON position: expected [x, y]"),
    }
}

fn json_points(value: &serde_json::Value) -> Result<Vec<Point>, GeometryError> {
    json_array(value)?.iter().map(json_point).collect()
}

fn json_rings(value: &serde_json::Value) -> Result<Vec<Vec<Point>>, GeometryError> {
    json_array(value)?.iter().map(json_points).collect()
}

struct BlobReader<'a> {
    blob: &'a [u8],
    position: usize,
    little_endian: bool,
}

impl BlobReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], GeometryError> {
        let bytes = self
            .blob
            .get(self.position..self.position + N)
            .ok_or_else(|| GeometryError("invalid SpatiaLite BLOB geometry: truncated".into()))?;
        self.position += N;
        Ok(bytes.try_into().expect("slice of length N"))
    }

    fn byte(&mut self) -> Result<u8, GeometryError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, GeometryError> {
        let bytes = self.take::<4>()?;
        Ok(if self.little_endian {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    }

    fn f64(&mut self) -> Result<f64, GeometryError> {
        let bytes = self.take::<8>()?;
        Ok(if self.little_endian {
            f64::from_le_bytes(bytes)
        } else {
            f64::from_be_bytes(bytes)
        })
    }

    fn count(&mut self) -> Result<usize, GeometryError> {
        let count = self.u32()? as usize;
        // Each item takes at least 4 bytes: refuse counts the blob cannot hold.
        if count > (self.blob.len() - self.position) / 4 + 1 {
            return error("invalid SpatiaLite BLOB geometry: count past the end");
        }
        Ok(count)
    }

    fn point(&mut self) -> Result<Point, GeometryError> {
        Ok(Point {
            x: self.f64()?,
            y: self.f64()?,
        })
    }

    fn points(&mut self) -> Result<Vec<Point>, GeometryError> {
        (0..self.count()?).map(|_| self.point()).collect()
    }

    fn rings(&mut self) -> Result<Vec<Vec<Point>>, GeometryError> {
        (0..self.count()?).map(|_| self.points()).collect()
    }

    fn member(&mut self, class: u32) -> Result<(), GeometryError> {
        if self.byte()? != BLOB_ENTITY || self.u32()? != class {
            return error("invalid SpatiaLite BLOB geometry: bad collection member");
        }
        Ok(())
    }

    fn geometry(&mut self, class: u32) -> Result<Geometry, GeometryError> {
        Ok(match class {
            CLASS_POINT => Geometry::Point(self.point()?),
            CLASS_LINESTRING => Geometry::LineString(self.points()?),
            CLASS_POLYGON => Geometry::Polygon(self.rings()?),
            CLASS_MULTIPOINT => Geometry::MultiPoint(
                (0..self.count()?)
                    .map(|_| {
                        self.member(CLASS_POINT)?;
                        self.point()
                    })
                    .collect::<Result<_, _>>()?,
            ),
            CLASS_MULTILINESTRING => Geometry::MultiLineString(
                (0..self.count()?)
                    .map(|_| {
                        self.member(CLASS_LINESTRING)?;
                        self.points()
                    })
                    .collect::<Result<_, _>>()?,
            ),
            CLASS_MULTIPOLYGON => Geometry::MultiPolygon(
                (0..self.count()?)
                    .map(|_| {
                        self.member(CLASS_POLYGON)?;
                        self.rings()
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return error(format!(
                "unsupported SpatiaLite geometry class {other} (only 2-D, uncompressed geometries)"
            ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkt_round_trips_in_canonical_form() {
        let g = Geometry::from_wkt("polygon ((5 52,6 52, 6 53 ,5 53, 5 52))").unwrap();
        assert_eq!(g.to_wkt(), "POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))");
        assert_eq!(Geometry::from_wkt(&g.to_wkt()).unwrap(), g);
        let precise = Geometry::from_wkt("POINT(0.1 -33.123456789012345)").unwrap();
        assert_eq!(Geometry::from_wkt(&precise.to_wkt()).unwrap(), precise);
    }

    #[test]
    fn reads_every_muninn_shape_and_ewkt() {
        for wkt in [
            "POINT(1 2)",
            "LINESTRING(1 2, 3 4)",
            "MULTIPOINT((1 2), (3 4))",
            "MULTILINESTRING((1 2, 3 4), (5 6, 7 8))",
            "MULTIPOLYGON(((179 0, 180 0, 180 1, 179 0)), ((-180 0, -179 0, -179 1, -180 0)))",
            "POLYGON((0 0, 10 0, 10 10, 0 0), (1 1, 2 1, 2 2, 1 1))",
        ] {
            let g = Geometry::from_wkt(wkt).unwrap();
            assert_eq!(g.to_wkt(), wkt);
            assert_eq!(
                Geometry::from_spatialite_blob(&g.to_spatialite_blob()).unwrap(),
                g
            );
        }
        assert_eq!(
            Geometry::from_wkt("SRID=4326;MULTIPOINT(1 2, 3 4)")
                .unwrap()
                .to_wkt(),
            "MULTIPOINT((1 2), (3 4))"
        );
    }

    #[test]
    fn refuses_what_muninn_cannot_store() {
        for (wkt, why) in [
            ("POLYGON((0 0, 1 0, 1 1, 0 1))", "closed"),
            ("POLYGON((0 0, 1 0, 0 0))", "4 points"),
            ("POLYGON EMPTY", "empty"),
            ("POINT Z(1 2 3)", "2-D"),
            ("POINT(1 2 3)", "2-D"),
            ("CIRCLE(1 2)", "unsupported"),
            ("POINT(1 2) extra", "after"),
            ("SRID=3857;POINT(1 2)", "SRID"),
            ("POINT(a b)", "number"),
        ] {
            let message = Geometry::from_wkt(wkt).unwrap_err().to_string();
            assert!(message.contains(why), "{wkt}: {message}");
        }
    }

    #[test]
    fn coordinates_must_lie_on_the_globe() {
        for fine in [
            "POINT(180 90)",
            "POINT(-180 -90)",
            "POLYGON((-180 -90, 180 -90, 180 90, -180 -90))",
        ] {
            assert!(
                Geometry::from_wkt(fine).unwrap().check_wgs84().is_ok(),
                "{fine}"
            );
        }
        for (wkt, why) in [
            ("POINT(5 90.5)", "latitude 90.5"),
            ("POLYGON((5 89, 6 89, 6 95, 5 89))", "latitude 95"),
            ("LINESTRING(0 0, -181 0)", "longitude -181"),
            ("MULTIPOINT((1 1), (200 10))", "longitude 200"),
        ] {
            let message = Geometry::from_wkt(wkt)
                .unwrap()
                .check_wgs84()
                .unwrap_err()
                .to_string();
            assert!(message.contains(why), "{wkt}: {message}");
        }
    }

    #[test]
    fn blob_matches_muninn_layout() {
        let g = Geometry::from_wkt("POINT(1 2)").unwrap();
        let blob = g.to_spatialite_blob();
        assert_eq!(blob.len(), 1 + 1 + 4 + 32 + 1 + 4 + 16 + 1);
        assert_eq!(&blob[..2], &[0x00, 0x01]);
        assert_eq!(&blob[2..6], &4326u32.to_le_bytes());
        assert_eq!(blob[38], 0x7C);
        assert_eq!(*blob.last().unwrap(), 0xFE);
        assert!(Geometry::from_spatialite_blob(&blob[..blob.len() - 1]).is_err());
    }

    #[test]
    fn numbers_keep_the_value_the_remote_wrote() {
        // serde_json's default float parsing reads this as ...277.
        let text = r#"{"type": "Point", "coordinates": [-11.974999865007275, 8.5e-05, 12.0]}"#;
        let geojson: serde_json::Value = serde_json::from_str(text).unwrap();
        let point = Geometry::from_geojson(&geojson).unwrap();
        assert_eq!(
            point,
            Geometry::Point(Point {
                x: -11.974999865007275,
                y: 0.000085
            })
        );
        // WKT shows the shortest decimal form that reads back to the same
        // number, without an exponent; the third coordinate is dropped.
        assert_eq!(point.to_wkt(), "POINT(-11.974999865007275 0.000085)");
        assert_eq!(Geometry::from_wkt(&point.to_wkt()).unwrap(), point);
        assert_eq!(
            Geometry::from_spatialite_blob(&point.to_spatialite_blob()).unwrap(),
            point
        );
    }

    #[test]
    fn reads_geojson() {
        let polygon = serde_json::json!({"type": "Polygon", "coordinates": [[[5, 52], [6, 52], [6, 53], [5, 52]]]});
        assert_eq!(
            Geometry::from_geojson(&polygon).unwrap().to_wkt(),
            "POLYGON((5 52, 6 52, 6 53, 5 52))"
        );
        let multi = serde_json::json!({"type": "MultiPolygon", "coordinates": [[[[5, 52], [6, 52], [6, 53], [5, 52]]]]});
        assert!(matches!(
            Geometry::from_geojson(&multi).unwrap(),
            Geometry::MultiPolygon(_)
        ));
        assert!(Geometry::from_geojson(
            &serde_json::json!({"type": "GeometryCollection", "geometries": []})
        )
        .is_err());
    }
}
