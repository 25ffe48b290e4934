// Package defaults applies an Options struct's defaults, the one rule the
// packages share: a field left unset — its zero value, or a number below
// zero — takes the default's value of the same field.
//
//	func (o *Options) setDefaults() { defaults.Fill(o, DefaultOptions()) }
//
// A field whose default is its zero value is left as it is (a negative
// number too), so a package states only the defaults it has; one derived
// from another field (TTL = 3 × Interval) is set by the package after Fill.
package defaults

import "reflect"

// Fill sets each exported field of *o that is unset to d's value of it,
// where d's is not zero. T is a struct type.
func Fill[T any](o *T, d T) {
	v, dv := reflect.ValueOf(o).Elem(), reflect.ValueOf(d)
	for i := range v.NumField() {
		f, def := v.Field(i), dv.Field(i)
		if f.CanSet() && unset(f) && !def.IsZero() {
			f.Set(def)
		}
	}
}

// unset reports whether f is its zero value or a number below zero.
func unset(f reflect.Value) bool {
	switch {
	case f.CanInt():
		return f.Int() <= 0
	case f.CanFloat():
		return f.Float() <= 0
	}
	return f.IsZero()
}
