//! pulsar's request bodies: JSON (what its node client sends) or a form (what curl users send).
//! Either becomes one JSON object of fields, so each route reads its fields one way whatever the
//! body was. pulsar 0.6.1 parsed forms with `bodyParser.urlencoded({extended: false})`
//! (Node's `querystring`: flat names only), so a form could not carry `taskVariables`; Bosun's
//! extension reads `taskVariables[NAME]=v` (the `qs` bracket syntax) as the object
//! `taskVariables`, and refuses any other `taskVariables…` name rather than drop it.

use crate::problem::{FieldError, Problem};
use crate::routes::compat::body::{self, Media};
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

/// The body's fields; none for an empty body.
pub struct Fields(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let kind = body::media_type(&request);
        let bytes = crate::extract::read_body(request, state).await?;
        if body::is_blank(&bytes) {
            return Ok(Fields(Map::new()));
        }
        let fields = match kind {
            Media::Json => body::json_object(&bytes)?,
            Media::Form => form(&bytes)?,
            Media::Other => return Err(body::unsupported()),
        };
        // The log cannot store a NUL: refused here, naming the field, as /v1 does.
        body::refuse_nul(&Value::Object(fields.clone()))?;
        Ok(Fields(fields))
    }
}

/// A form's fields: `name=value` pairs, `taskVariables[NAME]=value` into the object
/// `taskVariables`. A field given twice is a 400 (Express would have made it a list, which no
/// field here takes), and so is a `taskVariables…` name of another shape (`taskVariables[A`,
/// `taskVariables[]`, `taskVariables[A][B]`): a variable is not silently lost.
fn form(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Problem::bad_request(format!("the body is not a valid form: {e}"), vec![]))?;
    let twice = |field: &str| {
        Problem::bad_request(
            format!("{field} is given twice"),
            vec![FieldError {
                field: field.to_string(),
                message: "is given twice".into(),
            }],
        )
    };
    let mut fields = Map::new();
    for (key, value) in pairs {
        if let Some(name) = task_variable(&key)? {
            let variables = fields
                .entry("taskVariables")
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(variables) = variables else {
                return Err(twice("taskVariables"));
            };
            if variables
                .insert(name.to_string(), Value::String(value))
                .is_some()
            {
                return Err(twice(&format!("taskVariables.{name}")));
            }
        } else if fields.insert(key.clone(), Value::String(value)).is_some() {
            return Err(twice(&key));
        }
    }
    Ok(fields)
}

/// The variable a form name `taskVariables[NAME]` sets; `None` for a name outside
/// `taskVariables…` (and for `taskVariables` itself, which the route refuses as not an object);
/// a 400 naming it for any other name that begins so.
fn task_variable(key: &str) -> Result<Option<&str>, Problem> {
    let Some(rest) = key.strip_prefix("taskVariables") else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(name) if !name.is_empty() && !name.contains(['[', ']']) => Ok(Some(name)),
        _ => Err(Problem::bad_request(
            format!("the form field {key:?} is not taskVariables[NAME]"),
            vec![FieldError {
                field: key.to_string(),
                message: "must be taskVariables[NAME], one name in brackets".into(),
            }],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_form_nests_task_variables_in_brackets() {
        let fields =
            form(b"task=deploy&wait=1&taskVariables%5BVERSION%5D=1.2&taskVariables[BRANCH]=a+b")
                .unwrap();
        assert_eq!(
            Value::Object(fields),
            json!({"task": "deploy", "wait": "1", "taskVariables": {"VERSION": "1.2", "BRANCH": "a b"}})
        );
    }

    #[test]
    fn a_form_field_given_twice_is_refused() {
        for body in [
            &b"task=a&task=b"[..],
            b"taskVariables[A]=1&taskVariables[A]=2",
            b"taskVariables=x&taskVariables[A]=1",
        ] {
            assert_eq!(form(body).unwrap_err().status, 400);
        }
    }

    #[test]
    fn a_malformed_task_variables_name_is_refused_naming_it() {
        for (body, key) in [
            (&b"task=t&taskVariables[A=1"[..], "taskVariables[A"),
            (b"taskVariables%5BA=1", "taskVariables[A"),
            (b"taskVariables[]=1", "taskVariables[]"),
            (b"taskVariables[A][B]=1", "taskVariables[A][B]"),
            (b"taskVariablesA=1", "taskVariablesA"),
            (b"taskVariables[A]x=1", "taskVariables[A]x"),
        ] {
            let problem = form(body).unwrap_err();
            assert_eq!(problem.status, 400, "{key}");
            assert_eq!(problem.errors[0].field, key);
            let detail = problem.detail.unwrap_or_default();
            assert!(detail.contains(key), "{detail}");
        }
        // Other names are the route's to read or ignore.
        let fields = form(b"task=t&other[x]=1").unwrap();
        assert_eq!(fields["other[x]"], "1");
    }
}
