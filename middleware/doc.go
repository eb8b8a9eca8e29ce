// Package middleware holds millrace's router middleware: Watermill
// message.HandlerMiddleware values, so they work in millrace's App and in a
// plain Watermill router alike. Each file is one concern.
//
// The framework installs them as one default stack (see Stack); handlers can
// tune or switch off each part.
package middleware
