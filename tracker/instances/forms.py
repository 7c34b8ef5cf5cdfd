"""Dashboard forms; their fields obey the same rules as the API's."""

from collections.abc import Callable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import FloatField, StringField
from wtforms.validators import InputRequired, NumberRange, Optional, ValidationError

from tracker.fields import FieldError, email_value, text_value, url_value


def obeys(rule: Callable[[Any], Any]):
    """A WTForms validator from an API validation rule; stores the cleaned value."""

    def validate(_form, field) -> None:
        try:
            field.data = rule(field.data)
        except FieldError as exc:
            raise ValidationError(exc.message) from None

    return validate


EDITABLE_FIELDS = ("url", "contact", "email", "organisation")


class InstanceForm(FlaskForm):
    url = StringField(_l("URL"), validators=[obeys(url_value)])
    contact = StringField(
        _l("Contact"), validators=[obeys(lambda v: text_value("contact", v))]
    )
    email = StringField(_l("E-mail"), validators=[obeys(email_value)])
    organisation = StringField(
        _l("Organisation"), validators=[obeys(lambda v: text_value("organisation", v))]
    )


class LocationForm(FlaskForm):
    latitude = FloatField(
        _l("Latitude"), validators=[InputRequired(), NumberRange(-90, 90)]
    )
    longitude = FloatField(
        _l("Longitude"), validators=[InputRequired(), NumberRange(-180, 180)]
    )
    country_code = StringField(
        _l("Country code (ISO, two letters)"), validators=[InputRequired()]
    )
    city = StringField(_l("City"), validators=[Optional()])
